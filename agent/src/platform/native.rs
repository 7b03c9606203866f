//! Native platform (any systemd host): generations are generator output
//! trees imported with Stage under `<state>/generations/<N>/`,
//! content-addressed by the sha256 of their `windlass-generation.json`
//! (which lists every file's sha256, each checked on import). The running
//! generation is the symlink `<run>/current`, the selected one
//! `<state>/profiles/system`; windlass's systemd generator
//! (`agent/systemd/windlass-generator`) turns the running generation (or,
//! after a boot, the selected one) into units at every daemon-reload.
//! Activation is one rename of `<run>/current`, one daemon-reload, then
//! restarts of exactly the units whose definition changed, starts of new
//! ones and stops of removed ones.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{Activation, GenInfo, Platform, PlatformError};
use crate::contract::{MANIFEST, Manifest};
use crate::store::swap_symlink;
use crate::systemd::Systemd;

pub struct Native {
    pub state_dir: PathBuf,
    pub run_dir: PathBuf,
}

impl Native {
    pub fn new(state_dir: &Path, run_dir: &Path) -> Native {
        Native {
            state_dir: state_dir.to_path_buf(),
            run_dir: run_dir.to_path_buf(),
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
    pub fn generation_dir(&self, id: &str) -> PathBuf {
        self.dir(id)
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.generations_dir().join(id)
    }

    fn link_target(link: &Path) -> Option<String> {
        let t = fs::read_link(link).ok()?;
        t.file_name().map(|n| n.to_string_lossy().to_string())
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

    /// Units of a generation (unit → sha256 of its definition).
    fn units(&self, id: Option<&str>) -> BTreeMap<String, String> {
        id.and_then(|g| Manifest::read(&self.dir(g)).ok())
            .map(|m| m.units())
            .unwrap_or_default()
    }
}

impl Platform for Native {
    fn name(&self) -> &'static str {
        "native"
    }

    fn selected(&self) -> Option<String> {
        Self::link_target(&self.profile())
    }

    fn running(&self) -> Option<String> {
        Self::link_target(&self.current()).or_else(|| self.selected())
    }

    fn generations(&self) -> Vec<GenInfo> {
        super::gen_infos(self.ids(), self.selected(), self.running())
    }

    fn stage(&self, path: &Path) -> Result<String, PlatformError> {
        let manifest_bytes = fs::read(path.join(MANIFEST)).map_err(|e| {
            PlatformError::Invalid(format!(
                "{} is not a windlass generator output tree: {e}",
                path.display()
            ))
        })?;
        let m = Manifest::read(path).map_err(PlatformError::Invalid)?;
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
        for n in self.ids() {
            let d = self.dir(&n.to_string());
            if fs::read_to_string(d.join(".content-sha256"))
                .ok()
                .as_deref()
                == Some(key.as_str())
            {
                return Ok(n.to_string());
            }
        }
        let next = self.ids().last().map_or(1, |n| n + 1).to_string();
        let tmp = self
            .generations_dir()
            .join(format!(".staging-{next}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let res = (|| -> std::io::Result<()> {
            fs::create_dir_all(&tmp)?;
            for f in &m.files {
                let dest = tmp.join(&f.path);
                fs::create_dir_all(dest.parent().unwrap())?;
                fs::copy(path.join(&f.path), &dest)?;
                fs::File::open(&dest)?.sync_all()?;
            }
            fs::write(tmp.join(MANIFEST), &manifest_bytes)?;
            fs::write(tmp.join(".content-sha256"), &key)?;
            for d in ["quadlet", "systemd", ""] {
                if let Ok(f) = fs::File::open(tmp.join(d)) {
                    f.sync_all()?;
                }
            }
            fs::rename(&tmp, self.dir(&next))?;
            fs::File::open(self.generations_dir())?.sync_all()
        })();
        if let Err(e) = res {
            let _ = fs::remove_dir_all(&tmp);
            return Err(PlatformError::Failed(format!(
                "staging {}: {e}",
                path.display()
            )));
        }
        Ok(next)
    }

    fn manifest(&self, generation: &str) -> Option<Manifest> {
        Manifest::read(&self.dir(generation)).ok()
    }

    async fn activate(
        &self,
        systemd: &impl Systemd,
        from: Option<&str>,
        to: &str,
    ) -> Result<Activation, PlatformError> {
        if !self.dir(to).is_dir() {
            return Err(PlatformError::NotFound(to.to_string()));
        }
        let old = self.units(from);
        let new = self.units(Some(to));
        swap_symlink(&self.current(), &self.dir(to)).map_err(|e| {
            PlatformError::Failed(format!("switching {}: {e}", self.current().display()))
        })?;
        systemd
            .reload()
            .await
            .map_err(|e| PlatformError::Failed(format!("daemon-reload: {e}")))?;
        let mut act = Activation::default();
        for unit in old.keys().filter(|u| !new.contains_key(*u)) {
            let r = systemd
                .job("stop", unit)
                .await
                .map_err(|e| PlatformError::Failed(e.0))?;
            tracing::info!(unit, result = r, "stopped removed unit");
            act.stopped.push(unit.clone());
        }
        for (unit, sha) in &new {
            if old.get(unit) == Some(sha) {
                continue;
            }
            // A job's service runs when its timer fires, not at activation.
            if let Some(base) = unit.strip_suffix(".service")
                && new.contains_key(&format!("{base}.timer"))
            {
                continue;
            }
            let verb = if old.contains_key(unit) {
                "restart"
            } else {
                "start"
            };
            if verb == "restart" {
                // A unit still starting never became healthy (an unhealthy
                // generation being rolled back): its main process may not
                // heed SIGTERM before Podman's health wait ends, so it is
                // killed rather than left to the stop timeout.
                if let Ok(st) = systemd.state(unit).await
                    && st.active_state == "activating"
                {
                    let _ = systemd.kill(unit).await;
                }
                // Stop first and wait: a stop job cancels a start still
                // running (an unhealthy Notify=healthy unit being rolled
                // back), where a restart would queue behind it until its
                // start timeout.
                systemd
                    .job("stop", unit)
                    .await
                    .map_err(|e| PlatformError::Failed(e.0))?;
            }
            // The start is queued, not awaited: with Notify=healthy it
            // finishes only once healthy; the health gate waits, against
            // its deadline.
            systemd
                .enqueue("start", unit)
                .await
                .map_err(|e| PlatformError::Failed(e.0))?;
            tracing::info!(unit, verb, "queued");
            act.changed.push(unit.clone());
        }
        Ok(act)
    }

    async fn commit(&self, to: &str) -> Result<(), PlatformError> {
        swap_symlink(&self.profile(), &Path::new("../generations").join(to))
            .map_err(|e| PlatformError::Failed(format!("selecting generation {to}: {e}")))
    }
}
