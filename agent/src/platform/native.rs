//! Native platform (any systemd host): generations are generator output
//! trees imported with Stage under `<state>/generations/<N>/`,
//! content-addressed by the sha256 of their `windlass-generation.json`
//! (which lists every file's sha256, each checked on import, and again
//! before the generation is activated). How a tree is read without
//! trusting it: [`import`]. The running generation is the symlink
//! `<run>/current`, the selected one `<state>/profiles/system`;
//! windlass's systemd generator (`agent/systemd/windlass-generator`)
//! turns the running generation (or, after a boot, the selected one) into
//! units at every daemon-reload.
//! Activation is one rename of `<run>/current`, one daemon-reload, then
//! the [`plan`](super::plan): restarts of exactly the units whose
//! definition changed, starts of new ones and stops of removed ones.

use std::fs;
use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::import::{self, Limits};
use super::plan::{self, Units};
use super::{Activation, GenInfo, Platform, PlatformError};
use crate::contract::{GenerationId, Manifest};
use crate::durable::{fsync_dir, swap_symlink};
use crate::systemd::{Systemd, Verb};

pub struct Native {
    pub state_dir: PathBuf,
    pub run_dir: PathBuf,
    /// What one Stage may read.
    pub limits: Limits,
    /// One Stage at a time looks for an identical generation, chooses a
    /// number and renames into it (the copying runs in parallel).
    stage_lock: Mutex<()>,
}

impl Native {
    pub fn new(state_dir: &Path, run_dir: &Path) -> Native {
        Native {
            state_dir: state_dir.to_path_buf(),
            run_dir: run_dir.to_path_buf(),
            limits: Limits::default(),
            stage_lock: Mutex::new(()),
        }
    }

    fn generations_dir(&self) -> PathBuf {
        self.state_dir.join("generations")
    }

    pub fn profile(&self) -> PathBuf {
        self.state_dir.join("profiles/system")
    }

    pub fn current(&self) -> PathBuf {
        self.run_dir.join("current")
    }

    /// Where generation `id` is stored.
    pub fn dir(&self, id: GenerationId) -> PathBuf {
        self.generations_dir().join(id.to_string())
    }

    fn link_target(link: &Path) -> Option<GenerationId> {
        let t = fs::read_link(link).ok()?;
        t.file_name()?.to_str()?.parse().ok()
    }

    fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = fs::read_dir(self.generations_dir())
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Units of a generation (unit → sha256 of its definition); `None`:
    /// no generation, no units.
    fn units(&self, id: Option<GenerationId>) -> Result<Units, PlatformError> {
        match id {
            None => Ok(Units::new()),
            Some(g) => Manifest::read(&self.dir(g))
                .map(|m| m.units())
                .map_err(|e| PlatformError::Invalid(format!("generation {g}: {e}"))),
        }
    }

    /// Checks stored generation `id` before it is activated: its
    /// manifest, and every listed file a regular file with the listed
    /// sha256. A damaged generation is refused by name and path, never
    /// activated.
    pub fn verify(&self, id: GenerationId) -> Result<(), PlatformError> {
        self.verified_manifest(id).map(|_| ())
    }

    /// [`verify`](Self::verify), returning the manifest's bytes.
    fn verified_manifest(&self, id: GenerationId) -> Result<Vec<u8>, PlatformError> {
        let dir = import::open_own_dir(&self.dir(id)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => PlatformError::NotFound(id),
            _ => PlatformError::Invalid(format!("generation {id}: {e}")),
        })?;
        import::verify(dir.as_fd(), &self.limits)
            .map_err(|e| PlatformError::Invalid(format!("generation {id} is damaged: {e}")))
    }

    /// A stored generation with exactly this content: its manifest the
    /// same bytes (so the same files and hashes) and its files verified
    /// against it now. A generation whose files do not match (damaged, or
    /// poisoned by an older agent) is never reused.
    fn same_content(&self, imported: &import::Imported) -> Option<GenerationId> {
        for n in self.ids() {
            let g = GenerationId(n);
            let key = fs::read(self.dir(g).join(import::KEY_FILE)).unwrap_or_default();
            if key != imported.key.as_bytes() {
                continue;
            }
            match self.verified_manifest(g) {
                Ok(bytes) if bytes == imported.manifest_bytes => return Some(g),
                Ok(_) => {}
                Err(e) => tracing::warn!("not reusing generation {g}: {e}"),
            }
        }
        None
    }

    /// Removes staging directories a previous process left (one agent
    /// holds the state directory at a time, so any other pid is dead).
    fn remove_stale_staging(&self) {
        let me = std::process::id();
        for e in fs::read_dir(self.generations_dir()).into_iter().flatten() {
            let Ok(e) = e else { continue };
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(".staging-") && import::staging_pid(name) != Some(me) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }

    /// Imports the tree beneath `dir` (see [`import`]): copied once into
    /// a private staging directory, checked, then either answered by an
    /// identical stored generation or renamed into the next number.
    fn import_tree(&self, dir: BorrowedFd<'_>) -> Result<GenerationId, PlatformError> {
        let gens = self.generations_dir();
        let failed = |e: std::io::Error| {
            PlatformError::Failed(format!("staging into {}: {e}", gens.display()))
        };
        fs::create_dir_all(&gens).map_err(failed)?;
        let tmp = import::private_dir(&gens).map_err(failed)?;
        let res = import::import(dir, &tmp, &self.limits)
            .map_err(|e| match e {
                import::ImportError::Refused(m) => PlatformError::Invalid(m),
                import::ImportError::Failed(m) => PlatformError::Failed(m),
            })
            .and_then(|imported| self.place(&tmp, &imported));
        if !matches!(res, Ok((_, true))) {
            let _ = fs::remove_dir_all(&tmp);
        }
        res.map(|(g, _)| g)
    }

    /// Under the stage lock: an identical stored generation, or `tmp`
    /// renamed (never over anything) to the next free number. Returns the
    /// generation and whether `tmp` became it.
    fn place(
        &self,
        tmp: &Path,
        imported: &import::Imported,
    ) -> Result<(GenerationId, bool), PlatformError> {
        let _one = self.stage_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.remove_stale_staging();
        if let Some(g) = self.same_content(imported) {
            return Ok((g, false));
        }
        let mut next = self.ids().last().map_or(1, |n| n + 1);
        loop {
            match import::rename_noreplace(tmp, &self.dir(GenerationId(next))) {
                Ok(()) => break,
                Err(e)
                    if matches!(e.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENOTEMPTY)) =>
                {
                    next += 1
                }
                Err(e) => {
                    return Err(PlatformError::Failed(format!(
                        "moving the staged generation into place: {e}"
                    )));
                }
            }
        }
        fsync_dir(&self.generations_dir()).map_err(|e| {
            PlatformError::Failed(format!("{}: {e}", self.generations_dir().display()))
        })?;
        Ok((GenerationId(next), true))
    }
}

impl Platform for Native {
    fn name(&self) -> &'static str {
        "native"
    }

    fn selected(&self) -> Option<GenerationId> {
        Self::link_target(&self.profile())
    }

    fn running(&self) -> Option<GenerationId> {
        Self::link_target(&self.current()).or_else(|| self.selected())
    }

    fn generations(&self) -> Vec<GenInfo> {
        super::gen_infos(self.ids(), self.selected(), self.running())
    }

    fn stage(&self, path: &Path) -> Result<GenerationId, PlatformError> {
        let dir = import::open_dir(path).map_err(|e| {
            PlatformError::Invalid(format!(
                "{} is not a windlass generator output tree: {e}",
                path.display()
            ))
        })?;
        self.import_tree(dir.as_fd()).map_err(|e| match e {
            PlatformError::Invalid(m) => PlatformError::Invalid(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    fn stage_dir(&self, dir: OwnedFd) -> Result<GenerationId, PlatformError> {
        self.import_tree(dir.as_fd())
    }

    fn manifest(&self, generation: GenerationId) -> Option<Manifest> {
        Manifest::read(&self.dir(generation)).ok()
    }

    fn generation_tree(&self, generation: GenerationId) -> Option<PathBuf> {
        Some(self.dir(generation))
    }

    async fn activate(
        &self,
        systemd: &impl Systemd,
        from: Option<GenerationId>,
        to: GenerationId,
    ) -> Result<Activation, PlatformError> {
        if !self.dir(to).is_dir() {
            return Err(PlatformError::NotFound(to));
        }
        // The target must be intact before anything changes (every file
        // as its manifest lists it); an unreadable running generation
        // counts as having no units.
        self.verify(to)?;
        let new = self.units(Some(to))?;
        let old = self.units(from).unwrap_or_else(|e| {
            tracing::warn!("{e}; treating it as having no units");
            Units::new()
        });
        let plan = plan::plan(&old, &new);
        swap_symlink(&self.current(), &self.dir(to)).map_err(|e| {
            PlatformError::Failed(format!("switching {}: {e}", self.current().display()))
        })?;
        systemd
            .reload()
            .await
            .map_err(|e| PlatformError::Failed(format!("daemon-reload: {e}")))?;
        for unit in &plan.stop {
            let r = systemd
                .job(Verb::Stop, unit)
                .await
                .map_err(|e| PlatformError::Failed(e.0))?;
            tracing::info!(unit, result = r, "stopped removed unit");
        }
        for unit in plan.changed() {
            if plan.restart.contains(&unit) {
                // A unit still starting never became healthy (an unhealthy
                // generation being rolled back): its main process may not
                // heed SIGTERM before Podman's health wait ends, so it is
                // killed rather than left to the stop timeout.
                if let Ok(st) = systemd.state(&unit).await
                    && st.active_state == "activating"
                {
                    let _ = systemd.kill(&unit).await;
                }
                // Stop first and wait: a stop job cancels a start still
                // running (an unhealthy Notify=healthy unit being rolled
                // back), where a restart would queue behind it until its
                // start timeout.
                systemd
                    .job(Verb::Stop, &unit)
                    .await
                    .map_err(|e| PlatformError::Failed(e.0))?;
            }
            // The start is queued, not awaited: with Notify=healthy it
            // finishes only once healthy; the health gate waits, against
            // its deadline.
            systemd
                .enqueue(Verb::Start, &unit)
                .await
                .map_err(|e| PlatformError::Failed(e.0))?;
            tracing::info!(unit, "queued start");
        }
        Ok(Activation {
            changed: plan.changed(),
            stopped: plan.stop,
        })
    }

    async fn commit(&self, to: GenerationId) -> Result<(), PlatformError> {
        swap_symlink(
            &self.profile(),
            &Path::new("../generations").join(to.to_string()),
        )
        .map_err(|e| PlatformError::Failed(format!("selecting generation {to}: {e}")))
    }
}
