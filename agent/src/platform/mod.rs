//! Platforms: where generations live and how one is activated. Detected at
//! start (`--platform auto`): NixOS when `/etc/NIXOS` exists, Guix System
//! when `/var/guix/profiles/system` exists, else native. The operations
//! are generic over [`Platform`]; `windlassd` picks one at start.

pub mod guix;
pub mod import;
pub mod native;
pub mod nixos;
pub mod plan;
pub mod profiles;

use std::future::Future;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::contract::{GenerationId, Manifest};
use crate::systemd::Systemd;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GenInfo {
    pub id: GenerationId,
    pub selected: bool,
    pub running: bool,
    /// What the generation is, the same on every host (generation
    /// numbers are per host): on the native platform `sha256:<hex>` of
    /// its stored `windlass-generation.json` (which lists every file
    /// with its sha256); on NixOS and Guix System the store path of the
    /// system the profile generation links to. Empty when unknown.
    pub digest: String,
}

/// The generations `ids`, marking the selected and the running one, each
/// with its `digest`.
pub fn gen_infos(
    ids: Vec<u64>,
    selected: Option<GenerationId>,
    running: Option<GenerationId>,
    digest: impl Fn(GenerationId) -> Option<String>,
) -> Vec<GenInfo> {
    ids.into_iter()
        .map(|n| {
            let id = GenerationId(n);
            GenInfo {
                selected: selected == Some(id),
                running: running == Some(id),
                digest: digest(id).unwrap_or_default(),
                id,
            }
        })
        .collect()
}

/// What an activation changed: units the health gate must see healthy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activation {
    pub changed: Vec<String>,
    pub stopped: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("generation {0} not found")]
    NotFound(GenerationId),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Failed(String),
}

/// One platform. Methods that change the host are idempotent: an
/// operation may repeat one after a crash.
pub trait Platform: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn selected(&self) -> Option<GenerationId>;
    fn running(&self) -> Option<GenerationId>;
    fn generations(&self) -> Vec<GenInfo>;
    /// Imports a generator output tree (native only).
    fn stage(&self, path: &Path) -> Result<GenerationId, PlatformError>;
    /// Imports the generator output tree beneath `dir`, a directory the
    /// caller opened (native only). Platforms that do not import trees
    /// refuse it with the refusal of [`stage`](Self::stage).
    fn stage_dir(&self, dir: std::os::fd::OwnedFd) -> Result<GenerationId, PlatformError> {
        drop(dir);
        self.stage(Path::new(""))
    }
    /// The generation's health contracts, when it carries them.
    fn manifest(&self, generation: GenerationId) -> Option<Manifest>;
    /// Makes `to` the running generation; `from` is what runs now.
    fn activate(
        &self,
        systemd: &impl Systemd,
        from: Option<GenerationId>,
        to: GenerationId,
    ) -> impl Future<Output = Result<Activation, PlatformError>> + Send;
    /// Refuses a switch from `from` to `to` that could not be carried out
    /// safely, before anything is recorded (native: `to` would take over
    /// units that something other than windlass defines). Activation
    /// checks the same again.
    fn check_switch(
        &self,
        from: Option<GenerationId>,
        to: GenerationId,
    ) -> Result<(), PlatformError> {
        let _ = (from, to);
        Ok(())
    }
    /// The files of others that define units `to` would add to the host
    /// (not defined by `from`): (unit, file). What [`check_switch`] refuses
    /// and a switch with take-over sets aside.
    ///
    /// [`check_switch`]: Self::check_switch
    fn foreign(
        &self,
        from: Option<GenerationId>,
        to: GenerationId,
    ) -> Result<Vec<(String, PathBuf)>, PlatformError> {
        let _ = (from, to);
        Ok(Vec::new())
    }
    /// Moves `files` out of the way for operation `op`, keeping each
    /// durably in the state directory first. Idempotent: a file already
    /// set aside is done.
    fn set_aside(&self, op: &str, files: &[PathBuf]) -> Result<(), PlatformError> {
        let _ = op;
        match files.first() {
            None => Ok(()),
            Some(f) => Err(PlatformError::Invalid(format!(
                "{} cannot take over {}",
                self.name(),
                f.display()
            ))),
        }
    }
    /// Puts back the files `op` set aside. Idempotent. A file that
    /// someone has put in its place since is left alone, and the copy
    /// kept (said in the error).
    fn give_back(&self, op: &str, files: &[PathBuf]) -> Result<(), PlatformError> {
        let _ = (op, files);
        Ok(())
    }
    /// Returns the host to running no windlass generation: the way back
    /// from a first switch that did not commit. `from` is the generation
    /// being left; what it started is stopped and unloaded, its Podman
    /// networks removed; volumes (and their data) are kept. Idempotent.
    /// Platforms whose hosts always run a system generation refuse it.
    fn deactivate(
        &self,
        systemd: &impl Systemd,
        from: GenerationId,
    ) -> impl Future<Output = Result<Activation, PlatformError>> + Send {
        let _ = systemd;
        let name = self.name();
        async move {
            Err(PlatformError::Invalid(format!(
                "a {name} host always runs a system generation: there is no state without \
                 one to return to from generation {from}"
            )))
        }
    }
    /// Makes `to` the generation the host boots into.
    fn commit(&self, to: GenerationId) -> impl Future<Output = Result<(), PlatformError>> + Send;
    /// The generator output tree of a generation, where the agent keeps
    /// one (native): sweeps derive new generations from it. `None`: the
    /// platform builds its own systems (NixOS, Guix).
    fn generation_tree(&self, generation: GenerationId) -> Option<PathBuf> {
        let _ = generation;
        None
    }
    /// What drift detection covers here (nothing, by default).
    fn drift_coverage(&self) -> crate::drift::Coverage {
        crate::drift::Coverage::default()
    }
    /// The files `generation` installed that drift detection hashes:
    /// (absolute path, path in the generation, sha256).
    fn drift_files(&self, generation: GenerationId) -> Vec<(PathBuf, String, String)> {
        let _ = generation;
        Vec::new()
    }
    /// The links kept for `generation` while it runs.
    fn drift_links(&self, generation: GenerationId) -> Vec<crate::drift::compare::OwnedLink> {
        let _ = generation;
        Vec::new()
    }
    /// Readies what drift detection and restore need (native: pristine
    /// copies of generations staged before the agent kept them). Blocking;
    /// returns what was done, for the log.
    fn drift_prepare(&self) -> String {
        String::new()
    }
    /// An intact copy of the file `rel` of `generation`, as staged (what
    /// a restore writes back).
    fn pristine(&self, generation: GenerationId, rel: &str) -> Result<Vec<u8>, PlatformError> {
        let _ = generation;
        Err(PlatformError::Invalid(format!(
            "{} keeps no copy of {rel} to restore: rebuild the system instead",
            self.name()
        )))
    }
    fn exists(&self, generation: GenerationId) -> bool {
        self.generations().iter().any(|g| g.id == generation)
    }
}
