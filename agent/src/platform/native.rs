//! Native platform (any systemd host): generations are generator output
//! trees imported with Stage under `<state>/generations/<N>/`,
//! content-addressed by the sha256 of their `windlass-generation.json`
//! (which lists every file's sha256, each checked on import). The running
//! generation is the symlink `<run>/current`, the selected one
//! `<state>/profiles/system`; windlass's systemd generator
//! (`agent/systemd/windlass-generator`) turns the running generation (or,
//! after a boot, the selected one) into units at every daemon-reload.
//! Activation is one rename of `<run>/current`, one daemon-reload, then
//! the [`plan`](super::plan): restarts of exactly the units whose
//! definition changed, starts of new ones and stops of removed ones.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::plan::{self, Units};
use super::{Activation, GenInfo, Platform, PlatformError};
use crate::contract::{GenerationId, MANIFEST, Manifest};
use crate::durable::{fsync_dir, swap_symlink};
use crate::systemd::{Systemd, Verb};

pub struct Native {
    pub state_dir: PathBuf,
    pub run_dir: PathBuf,
    /// One Stage at a time chooses a number and renames into it.
    stage_lock: Mutex<()>,
}

impl Native {
    pub fn new(state_dir: &Path, run_dir: &Path) -> Native {
        Native {
            state_dir: state_dir.to_path_buf(),
            run_dir: run_dir.to_path_buf(),
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

    fn write_generation(
        &self,
        src: &Path,
        m: &Manifest,
        manifest_bytes: &[u8],
        key: &str,
        tmp: &Path,
        dest: &Path,
    ) -> std::io::Result<()> {
        fs::create_dir_all(tmp)?;
        let write = |p: &Path, bytes: &[u8]| -> std::io::Result<()> {
            fs::write(p, bytes)?;
            fs::File::open(p)?.sync_all()
        };
        for f in &m.files {
            let to = tmp.join(&f.path);
            fs::create_dir_all(to.parent().unwrap_or(tmp))?;
            fs::copy(src.join(&f.path), &to)?;
            fs::File::open(&to)?.sync_all()?;
        }
        write(&tmp.join(MANIFEST), manifest_bytes)?;
        write(&tmp.join(".content-sha256"), key.as_bytes())?;
        for d in ["quadlet", "systemd", ""] {
            if tmp.join(d).is_dir() {
                fsync_dir(&tmp.join(d))?;
            }
        }
        fs::rename(tmp, dest)?;
        fsync_dir(&self.generations_dir())
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
        let manifest_bytes = fs::read(path.join(MANIFEST)).map_err(|e| {
            PlatformError::Invalid(format!(
                "{} is not a windlass generator output tree: {e}",
                path.display()
            ))
        })?;
        let m = Manifest::from_slice(&manifest_bytes)
            .map_err(|e| PlatformError::Invalid(format!("{}: {e}", path.display())))?;
        // Every listed file must be there with the listed content.
        for f in &m.files {
            if f.path.split('/').any(|c| c == ".." || c.is_empty()) || f.path.starts_with('/') {
                return Err(PlatformError::Invalid(format!(
                    "unsafe path {:?} in {MANIFEST}",
                    f.path
                )));
            }
            let bytes = fs::read(path.join(&f.path)).map_err(|e| {
                PlatformError::Invalid(format!("{}: {e}", path.join(&f.path).display()))
            })?;
            let got = hex::encode(Sha256::digest(&bytes));
            if got != f.sha256 {
                return Err(PlatformError::Invalid(format!(
                    "{}: sha256 {got} does not match {MANIFEST} ({})",
                    f.path, f.sha256
                )));
            }
        }
        let key = hex::encode(Sha256::digest(&manifest_bytes));
        let _one = self.stage_lock.lock().unwrap_or_else(|p| p.into_inner());
        for n in self.ids() {
            let d = self.dir(GenerationId(n));
            if fs::read_to_string(d.join(".content-sha256"))
                .ok()
                .as_deref()
                == Some(key.as_str())
            {
                return Ok(GenerationId(n));
            }
        }
        let next = GenerationId(self.ids().last().map_or(1, |n| n + 1));
        let tmp = self
            .generations_dir()
            .join(format!(".staging-{next}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let res = self.write_generation(path, &m, &manifest_bytes, &key, &tmp, &self.dir(next));
        if let Err(e) = res {
            let _ = fs::remove_dir_all(&tmp);
            return Err(PlatformError::Failed(format!(
                "staging {}: {e}",
                path.display()
            )));
        }
        Ok(next)
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
        // The target must be readable before anything changes; an
        // unreadable running generation counts as having no units.
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
