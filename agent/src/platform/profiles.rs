//! System profiles, as NixOS and Guix System keep them: generations are
//! the links `<profiles>/system-<N>-link`; the selected one is where
//! `<profiles>/system` points, the running one is `/run/current-system`.
//! Each generation carries the apps' health contracts in
//! `etc/windlass/generation.json` (written by the NixOS module or the
//! Guix service).

use std::fs;
use std::path::{Path, PathBuf};

use super::GenInfo;
use crate::contract::{GenerationId, Manifest, SystemGeneration};

/// Runs host commands; tests record them instead.
pub trait Runner: Send + Sync {
    fn run(&self, argv: &[String]) -> Result<(), String>;
}

/// Runs commands for real. With `transient` (NixOS) each runs in a
/// transient systemd unit (`systemd-run --wait --pipe --collect`),
/// outside the agent's cgroup and sandbox: restarting windlassd (which
/// `switch-to-configuration` itself may do) never kills an activation
/// halfway. Guix System has no systemd: there the commands run as
/// children of the agent.
pub struct Exec {
    pub transient: bool,
}

impl Runner for Exec {
    fn run(&self, argv: &[String]) -> Result<(), String> {
        let Some((prog, args)) = argv.split_first() else {
            return Err("empty command".into());
        };
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
            let mut c = std::process::Command::new(prog);
            c.args(args);
            c
        };
        let out = cmd.output().map_err(|e| format!("{prog}: {e}"))?;
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

/// Where the profile links are.
#[derive(Debug, Clone)]
pub struct Profiles {
    /// `/nix/var/nix/profiles` or `/var/guix/profiles`.
    pub profiles: PathBuf,
    /// `/run/current-system`.
    pub current_system: PathBuf,
    /// `/etc`, where activation installs the system's `etc/` entries
    /// (drift compares them with the generation's).
    pub etc: PathBuf,
}

/// The subtrees of a system's `etc/` that windlass's modules install:
/// the contracts, and (NixOS, Quadlet backend) the Quadlet files.
pub const OWNED_ETC: [&str; 2] = ["windlass", "containers/systemd"];

impl Profiles {
    pub fn link(&self, id: GenerationId) -> PathBuf {
        self.profiles.join(format!("system-{id}-link"))
    }

    pub fn system(&self) -> PathBuf {
        self.profiles.join("system")
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

    fn which(&self, target: &Path) -> Option<GenerationId> {
        let t = fs::canonicalize(target).ok()?;
        self.ids()
            .into_iter()
            .map(GenerationId)
            .find(|id| fs::canonicalize(self.link(*id)).ok().as_deref() == Some(t.as_path()))
    }

    pub fn selected(&self) -> Option<GenerationId> {
        let l = fs::read_link(self.system()).ok()?;
        let n = l.file_name()?.to_str()?;
        n.strip_prefix("system-")?
            .strip_suffix("-link")?
            .parse()
            .ok()
    }

    pub fn running(&self) -> Option<GenerationId> {
        self.which(&self.current_system)
    }

    pub fn generations(&self) -> Vec<GenInfo> {
        super::gen_infos(self.ids(), self.selected(), self.running(), |g| {
            self.store_path(g)
        })
    }

    /// The store path profile generation `id` links to (what the
    /// generation is on every host): the link's target when it is an
    /// absolute path, as Nix and Guix write them.
    pub fn store_path(&self, id: GenerationId) -> Option<String> {
        let t = fs::read_link(self.link(id)).ok()?;
        t.is_absolute().then(|| t.to_string_lossy().to_string())
    }

    pub fn exists(&self, id: GenerationId) -> bool {
        fs::symlink_metadata(self.link(id)).is_ok()
    }

    /// The apps' contracts of a generation (the modules install only
    /// those, not the file list).
    pub fn manifest(&self, generation: GenerationId) -> Option<Manifest> {
        SystemGeneration::read(&self.link(generation))
            .map(Manifest::from)
            .map_err(|e| tracing::warn!("{e}"))
            .ok()
    }

    /// The files under `/etc` that windlass's module installs for
    /// `generation`: (where in `/etc`, `etc/<rel>`, sha256 of the
    /// generation's copy). The system's `etc/` is read-only (the store),
    /// so it is also the pristine copy.
    pub fn etc_files(&self, generation: GenerationId) -> Vec<(PathBuf, String, String)> {
        let etc = self.link(generation).join("etc");
        let mut out = Vec::new();
        for sub in OWNED_ETC {
            walk(&etc.join(sub), sub, &mut |rel, bytes| {
                out.push((
                    self.etc.join(rel),
                    format!("etc/{rel}"),
                    crate::drift::scan::sha256_hex(bytes),
                ))
            });
        }
        out
    }

    /// The units of the apps of a generation: what the gate checks.
    pub fn app_units(&self, generation: GenerationId) -> Vec<String> {
        self.manifest(generation)
            .map(|m| m.apps.into_iter().map(|a| a.unit).collect())
            .unwrap_or_default()
    }
}

/// The methods of [`Platform`](super::Platform) every profile-based
/// platform answers from its `profiles` field alike: `selected`,
/// `running`, `generations`, `manifest`, and `stage`, refused with how
/// this system builds its generations.
macro_rules! profile_platform_methods {
    ($system:literal, $build:literal) => {
        fn selected(&self) -> Option<GenerationId> {
            self.profiles.selected()
        }

        fn running(&self) -> Option<GenerationId> {
            self.profiles.running()
        }

        fn generations(&self) -> Vec<GenInfo> {
            self.profiles.generations()
        }

        fn stage(&self, _path: &Path) -> Result<GenerationId, PlatformError> {
            Err(PlatformError::Invalid(format!(
                "Stage is for the native platform; on {}, build a system ({}) and switch to its profile generation",
                $system, $build
            )))
        }

        fn manifest(&self, generation: GenerationId) -> Option<Manifest> {
            self.profiles.manifest(generation)
        }
    };
}
pub(crate) use profile_platform_methods;

/// Calls `f` with (path relative to the walk's base, content) for every
/// regular file under `dir` (links followed, as the store's `etc` is
/// made of them), at most 4 levels deep.
fn walk(dir: &Path, rel: &str, f: &mut dyn FnMut(&str, &[u8])) {
    fn go(dir: &Path, rel: &str, depth: usize, f: &mut dyn FnMut(&str, &[u8])) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let p = e.path();
            let r = format!("{rel}/{name}");
            match fs::metadata(&p) {
                Ok(m) if m.is_dir() && depth < 4 => go(&p, &r, depth + 1, f),
                Ok(m) if m.is_file() && m.len() <= 1 << 20 => {
                    if let Ok(bytes) = fs::read(&p) {
                        f(&r, &bytes);
                    }
                }
                _ => {}
            }
        }
    }
    go(dir, rel, 0, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generation_digest_is_its_system_store_path() {
        let d = tempfile::tempdir().unwrap();
        let p = Profiles {
            profiles: d.path().join("profiles"),
            current_system: d.path().join("current-system"),
            etc: d.path().join("etc"),
        };
        fs::create_dir_all(&p.profiles).unwrap();
        let store = "/nix/store/0000000000000000000000000000000a-nixos-system-h-25.05";
        std::os::unix::fs::symlink(store, p.link(GenerationId(1))).unwrap();
        std::os::unix::fs::symlink("elsewhere", p.link(GenerationId(2))).unwrap();
        let g = p.generations();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].digest, store);
        assert_eq!(g[1].digest, "", "a relative link names no store path");
    }
}
