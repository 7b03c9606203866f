//! Guix System: activation is `guix system switch-generation N` (Guix has
//! no test-only activation: the profile moves at once), then
//! `<gen>/activate` and `herd restart` of each app service of the
//! generation; the commit has nothing left to do. A rollback switches to
//! the generation recorded when the operation started, by number, never
//! to "the previous one" (which may be another generation created
//! meanwhile).

use std::path::Path;

use super::profiles::{Profiles, Runner, profile_platform_methods};
use super::{Activation, GenInfo, Platform, PlatformError};
use crate::contract::{GenerationId, Manifest};
use crate::systemd::Systemd;

pub struct Guix {
    pub profiles: Profiles,
    pub runner: Box<dyn Runner>,
}

impl Guix {
    pub fn new(runner: Box<dyn Runner>) -> Guix {
        Guix {
            profiles: Profiles {
                profiles: "/var/guix/profiles".into(),
                current_system: "/run/current-system".into(),
                etc: "/etc".into(),
            },
            runner,
        }
    }
}

impl Platform for Guix {
    fn name(&self) -> &'static str {
        "guix"
    }

    profile_platform_methods!("Guix System", "guix system build");

    /// What windlass's service put in `/etc` (the contracts), replaced or
    /// removed. No systemd, so no units; the containers run under the
    /// `oci-container` user's rootless Podman, not inspected yet.
    /// Restoring is reconfiguring.
    fn drift_coverage(&self) -> crate::drift::Coverage {
        use crate::drift::{Coverage, DriftKind};
        Coverage {
            kinds: vec![DriftKind::Modified, DriftKind::Removed],
            files: true,
            follow_links: true,
            ..Default::default()
        }
    }

    fn drift_files(&self, generation: GenerationId) -> Vec<(std::path::PathBuf, String, String)> {
        self.profiles.etc_files(generation)
    }

    async fn activate(
        &self,
        _systemd: &impl Systemd,
        _from: Option<GenerationId>,
        to: GenerationId,
    ) -> Result<Activation, PlatformError> {
        if !self.profiles.exists(to) {
            return Err(PlatformError::NotFound(to));
        }
        let apps = self.profiles.app_units(to);
        let run = |argv: Vec<String>| self.runner.run(&argv).map_err(PlatformError::Failed);
        run(vec![
            "guix".into(),
            "system".into(),
            "switch-generation".into(),
            to.to_string(),
        ])?;
        run(vec![
            self.profiles
                .link(to)
                .join("activate")
                .to_string_lossy()
                .to_string(),
        ])?;
        for svc in &apps {
            run(vec!["herd".into(), "restart".into(), svc.clone()])?;
        }
        // The gate checks every app of the generation.
        Ok(Activation {
            changed: apps,
            stopped: Vec::new(),
        })
    }

    async fn commit(&self, _to: GenerationId) -> Result<(), PlatformError> {
        // switch-generation already selected it.
        Ok(())
    }
}
