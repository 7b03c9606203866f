//! NixOS: activation is `<gen>/bin/switch-to-configuration test` (nothing
//! changes for the next boot); the commit, only after the health gate,
//! sets the profile (`nix-env -p <profiles>/system --switch-generation N`)
//! and runs `switch-to-configuration boot`. A reboot before the commit
//! comes back on the old generation; a failed gate never touches the
//! profile.

use std::path::Path;

use super::profiles::{Profiles, Runner, profile_platform_methods};
use super::{Activation, GenInfo, Platform, PlatformError};
use crate::contract::{GenerationId, Manifest};
use crate::systemd::Systemd;

pub struct Nixos {
    pub profiles: Profiles,
    pub runner: Box<dyn Runner>,
}

impl Nixos {
    pub fn new(runner: Box<dyn Runner>) -> Nixos {
        Nixos {
            profiles: Profiles {
                profiles: "/nix/var/nix/profiles".into(),
                current_system: "/run/current-system".into(),
                etc: "/etc".into(),
            },
            runner,
        }
    }

    fn stc(&self, id: GenerationId, verb: &str) -> Vec<String> {
        let stc = self.profiles.link(id).join("bin/switch-to-configuration");
        vec![stc.to_string_lossy().to_string(), verb.to_string()]
    }
}

impl Platform for Nixos {
    fn name(&self) -> &'static str {
        "nixos"
    }

    profile_platform_methods!("NixOS", "nixos-rebuild build");

    /// The store is read-only and `/etc/systemd/system` a link into it:
    /// what can drift is what windlass's module put in `/etc` (the
    /// contracts, the Quadlet files) replaced or removed, what the
    /// administrator adds at run time (a `--runtime` mask or drop-in, a
    /// `.control` setting), a unit that stopped loading, and a
    /// container's image. Restoring is rebuilding.
    fn drift_coverage(&self) -> crate::drift::Coverage {
        use crate::drift::{Coverage, DriftKind};
        Coverage {
            kinds: DriftKind::ALL.to_vec(),
            restore: false,
            files: true,
            follow_links: true,
            units: true,
            images: true,
            admin_dirs: vec![
                "etc/systemd/system.control",
                "run/systemd/system",
                "run/systemd/system.control",
                "run/systemd/transient",
            ],
            fragments: vec![
                "/etc/systemd/system".into(),
                "/nix/store".into(),
                "/run/systemd/generator".into(),
            ],
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
        self.runner
            .run(&self.stc(to, "test"))
            .map_err(PlatformError::Failed)?;
        // The gate checks every app of the generation.
        Ok(Activation {
            changed: self.profiles.app_units(to),
            stopped: Vec::new(),
        })
    }

    async fn commit(&self, to: GenerationId) -> Result<(), PlatformError> {
        self.runner
            .run(&[
                "nix-env".into(),
                "-p".into(),
                self.profiles.system().to_string_lossy().to_string(),
                "--switch-generation".into(),
                to.to_string(),
            ])
            .map_err(PlatformError::Failed)?;
        self.runner
            .run(&self.stc(to, "boot"))
            .map_err(PlatformError::Failed)
    }
}
