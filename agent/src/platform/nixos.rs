//! NixOS and Guix System: generations are the system profile's links
//! `<profiles>/system-<N>-link`; the selected one is where
//! `<profiles>/system` points, the running one is `/run/current-system`.
//!
//! NixOS: activation is `<gen>/bin/switch-to-configuration test` (nothing
//! changes for the next boot); the commit, only after the health gate,
//! sets the profile (`nix-env -p <profiles>/system --switch-generation N`)
//! and runs `switch-to-configuration boot`. A reboot before the commit
//! comes back on the old generation; a failed gate never touches the
//! profile.
//!
//! Guix: activation is `guix system switch-generation N` (Guix has no
//! test-only activation: the profile moves at once), then `<gen>/activate`
//! and `herd restart` of each app service of the generation; the commit has
//! nothing left to do. A rollback switches to the generation recorded when
//! the operation started, by number, never to "the previous one" (which
//! may be another generation created meanwhile).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{Activation, GenInfo, Platform, PlatformError};
use crate::contract::Manifest;
use crate::systemd::Systemd;

/// Runs host commands; tests record them instead.
pub trait Runner: Send + Sync {
    fn run(&self, argv: &[String]) -> Result<(), String>;
}

/// Runs commands for real. On NixOS each runs in a transient systemd unit
/// (`systemd-run --wait --pipe --collect`), outside the agent's cgroup and
/// sandbox: restarting windlassd (which `switch-to-configuration` itself
/// may do) never kills an activation halfway. Guix System has no systemd:
/// there the commands run as children of the agent.
pub struct Exec {
    pub transient: bool,
}

impl Runner for Exec {
    fn run(&self, argv: &[String]) -> Result<(), String> {
        let mut cmd = if self.transient {
            let mut c = std::process::Command::new("systemd-run");
            c.args([
                "--wait",
                "--pipe",
                "--collect",
                "--quiet",
                "--service-type=exec",
                "--",
            ])
            .args(argv);
            c
        } else {
            let mut c = std::process::Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        };
        let out = cmd.output().map_err(|e| format!("{}: {e}", argv[0]))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed ({}): {}",
                argv.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

/// Records commands, and plays what `nix-env --switch-generation` does to
/// the profile link so the state machine can be tested on a stand-in tree.
#[derive(Clone, Default)]
pub struct Recorder {
    pub calls: Arc<Mutex<Vec<String>>>,
    pub fail: Arc<Mutex<Vec<String>>>,
    /// Plays `switch-to-configuration test` / `activate` on this link.
    pub current_system: Option<PathBuf>,
    /// The profiles directory, for `guix system switch-generation`.
    pub profiles: Option<PathBuf>,
}

impl Runner for Recorder {
    fn run(&self, argv: &[String]) -> Result<(), String> {
        let line = argv.join(" ");
        self.calls.lock().unwrap().push(line.clone());
        if self
            .fail
            .lock()
            .unwrap()
            .iter()
            .any(|f| line.contains(f.as_str()))
        {
            return Err(format!("{line}: failed (stand-in)"));
        }
        if argv.len() == 5 && argv[0].ends_with("nix-env") && argv[3] == "--switch-generation" {
            let link = Path::new(&argv[2]);
            let target = format!("system-{}-link", argv[4]);
            crate::store::swap_symlink(link, Path::new(&target)).map_err(|e| e.to_string())?;
        }
        if argv.len() == 4
            && argv[1] == "system"
            && argv[2] == "switch-generation"
            && let Some(p) = &self.profiles
        {
            let target = format!("system-{}-link", argv[3]);
            crate::store::swap_symlink(&p.join("system"), Path::new(&target))
                .map_err(|e| e.to_string())?;
        }
        let activates = (argv[0].ends_with("bin/switch-to-configuration")
            && argv.get(1).is_some_and(|a| a == "test"))
            || argv[0].ends_with("/activate");
        if activates && let Some(cur) = &self.current_system {
            let gen_dir = Path::new(&argv[0])
                .ancestors()
                .nth(if argv[0].ends_with("/activate") { 1 } else { 2 })
                .unwrap();
            let target = fs::read_link(gen_dir).map_err(|e| e.to_string())?;
            let target = if target.is_relative() {
                gen_dir.parent().unwrap().join(target)
            } else {
                target
            };
            crate::store::swap_symlink(cur, &target).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Nixos,
    Guix,
}

pub struct Profiles {
    pub flavor: Flavor,
    /// `/nix/var/nix/profiles` or `/var/guix/profiles`.
    pub profiles: PathBuf,
    /// `/run/current-system`.
    pub current_system: PathBuf,
    pub nix_env: String,
    pub runner: Box<dyn Runner>,
}

impl Profiles {
    pub fn guix(runner: Box<dyn Runner>) -> Profiles {
        Profiles {
            flavor: Flavor::Guix,
            profiles: "/var/guix/profiles".into(),
            current_system: "/run/current-system".into(),
            nix_env: "guix".into(),
            runner,
        }
    }

    pub fn nixos(runner: Box<dyn Runner>) -> Profiles {
        Profiles {
            flavor: Flavor::Nixos,
            profiles: "/nix/var/nix/profiles".into(),
            current_system: "/run/current-system".into(),
            nix_env: "nix-env".into(),
            runner,
        }
    }

    fn link(&self, id: &str) -> PathBuf {
        self.profiles.join(format!("system-{id}-link"))
    }

    fn resolve(p: &Path) -> Option<PathBuf> {
        fs::canonicalize(p).ok()
    }

    fn ids(&self) -> Vec<u64> {
        let mut v: Vec<u64> = fs::read_dir(&self.profiles)
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let n = e.ok()?.file_name().to_string_lossy().to_string();
                n.strip_prefix("system-")?
                    .strip_suffix("-link")?
                    .parse()
                    .ok()
            })
            .collect();
        v.sort_unstable();
        v
    }

    fn which(&self, target: &Path) -> Option<String> {
        let t = Self::resolve(target)?;
        self.ids()
            .into_iter()
            .map(|n| n.to_string())
            .find(|id| Self::resolve(&self.link(id)).as_deref() == Some(t.as_path()))
    }
}

impl Platform for Profiles {
    fn name(&self) -> &'static str {
        match self.flavor {
            Flavor::Nixos => "nixos",
            Flavor::Guix => "guix",
        }
    }

    fn selected(&self) -> Option<String> {
        let l = fs::read_link(self.profiles.join("system")).ok()?;
        let n = l.file_name()?.to_string_lossy().to_string();
        n.strip_prefix("system-")?
            .strip_suffix("-link")
            .map(str::to_string)
    }

    fn running(&self) -> Option<String> {
        self.which(&self.current_system)
    }

    fn generations(&self) -> Vec<GenInfo> {
        super::gen_infos(self.ids(), self.selected(), self.running())
    }

    fn stage(&self, _path: &Path) -> Result<String, PlatformError> {
        Err(PlatformError::Invalid(
            "Stage is for the native platform; on NixOS, build a system (nixos-rebuild build) and switch to its profile generation".into(),
        ))
    }

    fn manifest(&self, generation: &str) -> Option<Manifest> {
        let etc = self.link(generation).join("etc/windlass");
        let bytes = fs::read(etc.join("generation.json")).ok()?;
        // The NixOS module installs the apps' contracts only.
        let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        let apps = serde_json::from_value(v.get("apps")?.clone()).ok()?;
        Some(Manifest {
            format: 1,
            files: Vec::new(),
            apps,
        })
    }

    async fn activate(
        &self,
        _systemd: &impl Systemd,
        _from: Option<&str>,
        to: &str,
    ) -> Result<Activation, PlatformError> {
        let link = self.link(to);
        if !link.exists() && fs::symlink_metadata(&link).is_err() {
            return Err(PlatformError::NotFound(to.to_string()));
        }
        let apps: Vec<String> = self
            .manifest(to)
            .map(|m| m.apps.into_iter().map(|a| a.unit).collect())
            .unwrap_or_default();
        match self.flavor {
            Flavor::Nixos => {
                let stc = link.join("bin/switch-to-configuration");
                self.runner
                    .run(&[stc.to_string_lossy().to_string(), "test".into()])
                    .map_err(PlatformError::Failed)?;
            }
            Flavor::Guix => {
                self.runner
                    .run(&[
                        self.nix_env.clone(),
                        "system".into(),
                        "switch-generation".into(),
                        to.to_string(),
                    ])
                    .map_err(PlatformError::Failed)?;
                self.runner
                    .run(&[link.join("activate").to_string_lossy().to_string()])
                    .map_err(PlatformError::Failed)?;
                for svc in &apps {
                    self.runner
                        .run(&["herd".into(), "restart".into(), svc.clone()])
                        .map_err(PlatformError::Failed)?;
                }
            }
        }
        // The gate checks every app of the generation.
        let changed = apps;
        Ok(Activation {
            changed,
            stopped: Vec::new(),
        })
    }

    async fn commit(&self, to: &str) -> Result<(), PlatformError> {
        if self.flavor == Flavor::Guix {
            // switch-generation already selected it.
            return Ok(());
        }
        let profile = self.profiles.join("system");
        self.runner
            .run(&[
                self.nix_env.clone(),
                "-p".into(),
                profile.to_string_lossy().to_string(),
                "--switch-generation".into(),
                to.to_string(),
            ])
            .map_err(PlatformError::Failed)?;
        let stc = self.link(to).join("bin/switch-to-configuration");
        self.runner
            .run(&[stc.to_string_lossy().to_string(), "boot".into()])
            .map_err(PlatformError::Failed)
    }
}
