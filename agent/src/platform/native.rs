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
//! definition changed, starts of new ones and stops of removed ones (and
//! removal of the Podman networks whose Quadlet files are gone).

use std::collections::BTreeSet;
use std::fs;
use std::io::Read as _;
use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};

use super::import::{self, Limits};
use super::plan::{self, Units};
use super::{Activation, GenInfo, Platform, PlatformError};
use crate::contract::{GenerationId, Manifest};
use crate::drift::objects::Objects;
use crate::durable::{fsync_dir, swap_symlink};
use crate::systemd::{Systemd, Verb};

pub struct Native {
    pub state_dir: PathBuf,
    pub run_dir: PathBuf,
    /// What one Stage may read.
    pub limits: Limits,
    /// One Stage at a time keeps pristine copies of its files, looks for
    /// an identical generation, chooses a number and renames into it (the
    /// copying runs in parallel); pruning and backfilling the pristine
    /// copies hold it too.
    stage_lock: Mutex<()>,
    /// The root under which unit and Quadlet files that windlass does not
    /// own are looked for before a switch ([`foreign_definitions`]):
    /// `/` on a real host; `None` (no check) with `--systemd none` and in
    /// tests that do not ask for it.
    ///
    /// [`foreign_definitions`]: Native::foreign_definitions
    pub foreign_root: Option<PathBuf>,
}

/// Where systemd finds units that outrank or stand beside what windlass's
/// generator writes (systemd.unit(5), system unit search path), and where
/// Podman's own Quadlet generator finds its sources (podman-systemd.unit(5)).
const UNIT_DIRS: &[&str] = &[
    "etc/systemd/system",
    "run/systemd/system",
    "usr/local/lib/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
];
const QUADLET_DIRS: &[&str] = &["etc/containers/systemd", "usr/share/containers/systemd"];

/// The Quadlet source file names that produce `unit` (by Quadlet's
/// default names; a `ServiceName=` elsewhere is not seen).
fn quadlet_sources(unit: &str) -> Vec<String> {
    let Some(stem) = unit.strip_suffix(".service") else {
        return Vec::new();
    };
    for (suffix, ext) in [
        ("-volume", "volume"),
        ("-network", "network"),
        ("-pod", "pod"),
    ] {
        if let Some(base) = stem.strip_suffix(suffix) {
            return vec![format!("{base}.{ext}"), format!("{stem}.container")];
        }
    }
    vec![format!("{stem}.container"), format!("{stem}.kube")]
}

impl Native {
    pub fn new(state_dir: &Path, run_dir: &Path) -> Native {
        Native {
            state_dir: state_dir.to_path_buf(),
            run_dir: run_dir.to_path_buf(),
            limits: Limits::default(),
            stage_lock: Mutex::new(()),
            foreign_root: None,
        }
    }

    /// Units `to` would add to the host (not defined by `from`, which
    /// windlass owns) that something else already defines: a unit file in
    /// systemd's search path, or a Quadlet file Podman's own generator
    /// turns into that unit. Each as (unit, file).
    pub fn foreign_definitions(
        &self,
        from: Option<GenerationId>,
        to: GenerationId,
    ) -> Result<Vec<(String, PathBuf)>, PlatformError> {
        let Some(root) = &self.foreign_root else {
            return Ok(Vec::new());
        };
        let ours = self.units(from).unwrap_or_default();
        let mut found = Vec::new();
        for unit in self
            .units(Some(to))?
            .keys()
            .filter(|u| !ours.contains_key(*u))
        {
            for d in UNIT_DIRS {
                let p = root.join(d).join(unit);
                if fs::symlink_metadata(&p).is_ok() {
                    found.push((unit.clone(), p));
                }
            }
            for d in QUADLET_DIRS {
                for name in quadlet_sources(unit) {
                    found.extend(
                        find_named(&root.join(d), &name, 4)
                            .into_iter()
                            .map(|p| (unit.clone(), p)),
                    );
                }
            }
        }
        // /lib is /usr/lib on merged-/usr hosts: one file, said once.
        let mut seen = std::collections::BTreeSet::new();
        found.retain(|(_, p)| seen.insert(fs::canonicalize(p).unwrap_or_else(|_| p.clone())));
        Ok(found)
    }

    /// Where operation `op` keeps `file` while it is taken over:
    /// `<state>/taken-over/<op>/<the file's absolute path>`.
    fn aside(&self, op: &str, file: &Path) -> Result<PathBuf, PlatformError> {
        let rel = file.strip_prefix("/").map_err(|_| {
            PlatformError::Invalid(format!("{} is not an absolute path", file.display()))
        })?;
        if op.is_empty() || !op.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(PlatformError::Invalid(format!("bad operation id {op:?}")));
        }
        if rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(PlatformError::Invalid(format!(
                "{} is not a plain path",
                file.display()
            )));
        }
        Ok(self.state_dir.join("taken-over").join(op).join(rel))
    }

    /// Refuses `to` when it would take over a unit windlass does not own.
    pub fn check_ownership(
        &self,
        from: Option<GenerationId>,
        to: GenerationId,
    ) -> Result<(), PlatformError> {
        let found = self.foreign_definitions(from, to)?;
        if found.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = found
            .iter()
            .map(|(u, p)| format!("{u} is already defined by {}", p.display()))
            .collect();
        Err(PlatformError::Invalid(format!(
            "generation {to} would take over units windlass does not own: {}; \
             move those files away (or rename the apps) and switch again",
            list.join("; ")
        )))
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

    /// `sha256:<hex>` of generation `id`'s stored manifest (the bytes
    /// it was staged with: the same tree gives the same digest on every
    /// host, whatever number it got).
    pub fn digest(&self, id: GenerationId) -> Option<String> {
        let bytes = fs::read(self.dir(id).join(crate::contract::MANIFEST)).ok()?;
        Some(format!("sha256:{}", hex::encode(Sha256::digest(&bytes))))
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

    /// The Podman networks generation `id` creates: each Quadlet
    /// `.network` file's `NetworkName=`, else Quadlet's default
    /// `systemd-<file name>`.
    fn networks(&self, id: GenerationId) -> Vec<String> {
        let Ok(m) = Manifest::read(&self.dir(id)) else {
            return Vec::new();
        };
        m.files
            .iter()
            .filter_map(|f| {
                let stem = f.path.strip_prefix("quadlet/")?.strip_suffix(".network")?;
                let text = fs::read_to_string(self.dir(id).join(&f.path)).unwrap_or_default();
                Some(network_name(&text).unwrap_or_else(|| format!("systemd-{stem}")))
            })
            .collect()
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
        // Pristine copies first, from the tree just checked: a generation
        // never exists without them (a crash here leaves only copies that
        // the next prune removes), and staging a tree again restores the
        // copies of an identical stored generation.
        self.put_objects(tmp, &imported.manifest)?;
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

    /// The store of pristine copies of what generations install
    /// (`<state>/objects/sha256/`).
    pub fn objects(&self) -> Objects {
        Objects::new(&self.state_dir)
    }

    /// Keeps a pristine copy of every file `m` lists, read from the tree
    /// at `dir` (checked against `m`), durably.
    fn put_objects(&self, dir: &Path, m: &Manifest) -> Result<(), PlatformError> {
        let files: Vec<(String, PathBuf)> = m
            .files
            .iter()
            .map(|f| (f.sha256.to_ascii_lowercase(), dir.join(&f.path)))
            .collect();
        self.objects()
            .put_files(files.iter().map(|(h, p)| (h.as_str(), p.as_path())))
            .map(|_| ())
            .map_err(|e| PlatformError::Failed(format!("keeping pristine copies: {e}")))
    }

    /// Keeps pristine copies of the files of generations staged before
    /// the store existed (or whose copies were lost): each listed file
    /// whose content has its listed sha256 now. A file that no longer
    /// has it is skipped, with a warning unless another generation had
    /// the same content. Returns how many copies it made.
    pub fn backfill_objects(&self) -> usize {
        let _one = self.stage_lock.lock().unwrap_or_else(|p| p.into_inner());
        let objects = self.objects();
        let mut made = 0;
        let mut skipped = Vec::new();
        for n in self.ids() {
            let g = GenerationId(n);
            let m = match Manifest::read(&self.dir(g)) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!("no pristine copies of generation {g}: {e}");
                    continue;
                }
            };
            for f in &m.files {
                if let Err(e) = import::check_path(&f.path) {
                    tracing::warn!("generation {g}: {e}");
                    continue;
                }
                let sha = f.sha256.to_ascii_lowercase();
                match objects.put_file(&sha, &self.dir(g).join(&f.path)) {
                    Ok(true) => made += 1,
                    Ok(false) => {}
                    Err(e) => skipped.push((g, f.path.clone(), sha, e)),
                }
            }
        }
        for (g, path, sha, e) in skipped {
            if !objects.has(&sha) {
                tracing::warn!(
                    "no pristine copy of {path} of generation {g}: {e}; \
                     a restore of it needs the generation staged again"
                );
            }
        }
        made
    }

    /// Removes the pristine copies that no stored generation lists.
    /// Stored generations are never removed yet, so nothing calls this
    /// but tests; whatever removes them will, after. Refused (nothing
    /// removed) when a stored generation's manifest cannot be read: the
    /// copies it lists are unknown. Returns how many it removed.
    pub fn prune_objects(&self) -> Result<usize, PlatformError> {
        let _one = self.stage_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut keep = BTreeSet::new();
        for n in self.ids() {
            let g = GenerationId(n);
            let m = Manifest::read(&self.dir(g)).map_err(|e| {
                PlatformError::Failed(format!("not pruning pristine copies: generation {g}: {e}"))
            })?;
            keep.extend(m.files.iter().map(|f| f.sha256.to_ascii_lowercase()));
        }
        self.objects()
            .prune(&keep)
            .map_err(|e| PlatformError::Failed(format!("pruning pristine copies: {e}")))
    }

    /// The content listed file `rel` of generation `generation` was
    /// staged with: its pristine copy, hashed again; else the same
    /// content (by sha256) from the generation's own file, if it still
    /// has it, or from any other stored generation listing it (the copy
    /// is then made again). Never anything whose hash is not the
    /// manifest's.
    pub fn pristine(&self, generation: GenerationId, rel: &str) -> Result<Vec<u8>, PlatformError> {
        let g = generation;
        if !self.dir(g).is_dir() {
            return Err(PlatformError::NotFound(g));
        }
        let m = Manifest::read(&self.dir(g))
            .map_err(|e| PlatformError::Invalid(format!("generation {g}: {e}")))?;
        let entry = m.files.iter().find(|f| f.path == rel).ok_or_else(|| {
            PlatformError::Invalid(format!("{rel} is not a file of generation {g}"))
        })?;
        let sha = entry.sha256.to_ascii_lowercase();
        let objects = self.objects();
        match objects.get(&sha) {
            Ok(bytes) => return Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!("no pristine copy of {rel} of generation {g} is stored")
            }
            Err(e) => tracing::warn!("pristine copy of {rel} of generation {g}: {e}"),
        }
        let mut candidates = vec![(g, rel.to_string())];
        for n in self.ids().into_iter().filter(|n| *n != g.0) {
            if let Ok(other) = Manifest::read(&self.dir(GenerationId(n))) {
                candidates.extend(
                    other
                        .files
                        .into_iter()
                        .filter(|f| f.sha256.eq_ignore_ascii_case(&sha))
                        .map(|f| (GenerationId(n), f.path)),
                );
            }
        }
        for (c, path) in candidates {
            let Some(bytes) = self.read_verified(c, &path, &sha) else {
                continue;
            };
            let _one = self.stage_lock.lock().unwrap_or_else(|p| p.into_inner());
            match objects.put_file(&sha, &self.dir(c).join(&path)) {
                Ok(_) => tracing::info!(
                    "pristine copy of {rel} of generation {g} made again from {path} of generation {c}"
                ),
                Err(e) => tracing::warn!("pristine copy of {rel} of generation {g}: {e}"),
            }
            return Ok(bytes);
        }
        Err(PlatformError::Failed(format!(
            "no intact copy of {rel} (sha256 {sha}): stage the generation again"
        )))
    }

    /// Listed file `rel` of generation `g`, if it is a regular file
    /// (never through a symlink) whose content has `sha256`.
    fn read_verified(&self, g: GenerationId, rel: &str, sha256: &str) -> Option<Vec<u8>> {
        import::check_path(rel).ok()?;
        let dir = import::open_own_dir(&self.dir(g)).ok()?;
        let f = import::open_regular(dir.as_fd(), rel, self.limits.file_bytes).ok()?;
        let mut bytes = Vec::new();
        f.take(self.limits.file_bytes + 1)
            .read_to_end(&mut bytes)
            .ok()?;
        (hex::encode(Sha256::digest(&bytes)) == sha256).then_some(bytes)
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
        super::gen_infos(self.ids(), self.selected(), self.running(), |g| {
            self.digest(g)
        })
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

    fn drift_coverage(&self) -> crate::drift::Coverage {
        use crate::drift::{Coverage, DriftKind, compare::ADMIN_DIRS};
        Coverage {
            kinds: DriftKind::ALL.to_vec(),
            restore: true,
            files: true,
            follow_links: false,
            units: true,
            images: true,
            admin_dirs: ADMIN_DIRS.to_vec(),
            // Quadlet's units are generated; the generation's own are
            // linked into the generator directory from the store.
            fragments: vec![
                PathBuf::from("/run/systemd/generator"),
                self.current(),
                self.generations_dir(),
                self.state_dir.join("profiles"),
            ],
        }
    }

    fn drift_files(&self, generation: GenerationId) -> Vec<(PathBuf, String, String)> {
        let dir = self.dir(generation);
        self.manifest(generation)
            .map(|m| {
                m.files
                    .into_iter()
                    .map(|f| (dir.join(&f.path), f.path, f.sha256))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn drift_prepare(&self) -> String {
        match self.backfill_objects() {
            0 => String::new(),
            n => format!("kept pristine copies of {n} files of generations staged before"),
        }
    }

    fn pristine(&self, generation: GenerationId, rel: &str) -> Result<Vec<u8>, PlatformError> {
        Native::pristine(self, generation, rel)
    }

    fn drift_links(&self, generation: GenerationId) -> Vec<crate::drift::compare::OwnedLink> {
        use crate::drift::compare::OwnedLink;
        let mut out = Vec::new();
        if Self::link_target(&self.current()) == Some(generation) {
            out.push(OwnedLink {
                path: self.current(),
                target: self.dir(generation),
            });
        }
        if self.selected() == Some(generation) {
            out.push(OwnedLink {
                path: self.profile(),
                target: Path::new("../generations").join(generation.to_string()),
            });
        }
        out
    }

    fn check_switch(
        &self,
        from: Option<GenerationId>,
        to: GenerationId,
    ) -> Result<(), PlatformError> {
        self.check_ownership(from, to)
    }

    fn foreign(
        &self,
        from: Option<GenerationId>,
        to: GenerationId,
    ) -> Result<Vec<(String, PathBuf)>, PlatformError> {
        self.foreign_definitions(from, to)
    }

    fn set_aside(&self, op: &str, files: &[PathBuf]) -> Result<(), PlatformError> {
        for f in files {
            let aside = self.aside(op, f)?;
            if fs::symlink_metadata(f).is_err() {
                if fs::symlink_metadata(&aside).is_ok() {
                    continue; // set aside before a crash
                }
                return Err(PlatformError::Failed(format!(
                    "{} to take over is gone, and was not set aside",
                    f.display()
                )));
            }
            move_durably(f, &aside).map_err(|e| {
                PlatformError::Failed(format!("setting {} aside: {e}", f.display()))
            })?;
            tracing::info!(file = %f.display(), aside = %aside.display(), "took over");
        }
        Ok(())
    }

    fn give_back(&self, op: &str, files: &[PathBuf]) -> Result<(), PlatformError> {
        let mut kept = Vec::new();
        for f in files {
            let aside = self.aside(op, f)?;
            if fs::symlink_metadata(&aside).is_err() {
                continue; // never set aside, or given back already
            }
            if fs::symlink_metadata(f).is_ok() {
                kept.push(format!(
                    "{} exists again; its earlier version is kept in {}",
                    f.display(),
                    aside.display()
                ));
                continue;
            }
            move_durably(&aside, f)
                .map_err(|e| PlatformError::Failed(format!("putting {} back: {e}", f.display())))?;
        }
        if kept.is_empty() {
            Ok(())
        } else {
            Err(PlatformError::Failed(kept.join("; ")))
        }
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
        self.check_ownership(from, to)?;
        let new = self.units(Some(to))?;
        let old = self.units(from).unwrap_or_else(|e| {
            tracing::warn!("{e}; treating it as having no units");
            Units::new()
        });
        let plan = plan::plan(&old, &new);
        // Units the target does not have are stopped first, while their
        // definitions are still loaded: after the reload below their
        // files are gone, and systemd would stop them as not-found units
        // with no ExecStop (a Quadlet container's `podman rm` never
        // runs; the container outlives its unit).
        // Timers first, then apps, then pods, networks and volumes.
        stop_units(systemd, &plan::teardown_order(&plan.stop), "removed").await?;
        swap_symlink(&self.current(), &self.dir(to)).map_err(|e| {
            PlatformError::Failed(format!("switching {}: {e}", self.current().display()))
        })?;
        systemd
            .reload()
            .await
            .map_err(|e| PlatformError::Failed(format!("daemon-reload: {e}")))?;
        // A removed unit whose stop ended `failed` (killed after its stop
        // timeout) would stay listed, not-found and failed, until the
        // next boot.
        for unit in &plan.stop {
            let _ = systemd.reset_failed(unit).await;
        }
        // The Podman networks of Quadlet files that are gone (their units
        // were just stopped): removed, like the units.
        let kept = self.networks(to);
        let gone = from.map(|f| self.networks(f)).unwrap_or_default();
        // The containers of removed apps, if their units' stop left any,
        // go too (before their networks).
        if !plan.stop.is_empty()
            && let (Some(f), Ok(new_m)) = (from, Manifest::read(&self.dir(to)))
            && let Ok(old_m) = Manifest::read(&self.dir(f))
        {
            for app in old_m
                .apps
                .iter()
                .filter(|a| !new_m.apps.iter().any(|b| b.name == a.name))
            {
                if let Err(e) = systemd.remove_app_containers(&app.name).await {
                    tracing::warn!("{e}");
                }
            }
        }
        for net in gone {
            if !kept.contains(&net) {
                remove_network(systemd, &net).await;
            }
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

    async fn deactivate(
        &self,
        systemd: &impl Systemd,
        from: GenerationId,
    ) -> Result<Activation, PlatformError> {
        let old = self.units(Some(from)).unwrap_or_else(|e| {
            tracing::warn!("{e}; treating it as having no units");
            Units::new()
        });
        let stop = plan::teardown_order(old.keys());
        // Stopped while their definitions are still loaded, timers
        // first (none may start its service again), then the apps, then
        // the pods, networks and volumes they needed.
        stop_units(systemd, &stop, "of the generation being left").await?;
        match fs::remove_file(self.current()) {
            Ok(()) => fsync_dir(&self.run_dir)
                .map_err(|e| PlatformError::Failed(format!("{}: {e}", self.run_dir.display())))?,
            // Never activated (a crash before it), or removed already.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(PlatformError::Failed(format!(
                    "removing {}: {e}",
                    self.current().display()
                )));
            }
        }
        // The generator now finds no generation: the units are gone.
        systemd
            .reload()
            .await
            .map_err(|e| PlatformError::Failed(format!("daemon-reload: {e}")))?;
        for unit in &stop {
            let _ = systemd.reset_failed(unit).await;
        }
        if let Ok(m) = Manifest::read(&self.dir(from)) {
            for app in &m.apps {
                if let Err(e) = systemd.remove_app_containers(&app.name).await {
                    tracing::warn!("{e}");
                }
            }
        }
        for net in self.networks(from) {
            remove_network(systemd, &net).await;
        }
        Ok(Activation {
            changed: Vec::new(),
            stopped: stop,
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

/// Stops `units` in order, each waited for. A unit still starting (an
/// unhealthy Notify=healthy unit) is killed first: its main process may
/// not heed SIGTERM before Podman's health wait ends.
async fn stop_units(
    systemd: &impl Systemd,
    units: &[String],
    what: &str,
) -> Result<(), PlatformError> {
    for unit in units {
        if let Ok(st) = systemd.state(unit).await
            && st.active_state == "activating"
        {
            let _ = systemd.kill(unit).await;
        }
        let r = systemd
            .job(Verb::Stop, unit)
            .await
            .map_err(|e| PlatformError::Failed(e.0))?;
        tracing::info!(unit, result = r, "stopped unit {what}");
    }
    Ok(())
}

/// Removes a Podman network the generation being left created. A
/// container of that generation may still be going away (its unit's
/// stop ran, Podman's cleanup of the container can lag), so a refusal is
/// tried again a few times; one that stays is logged, and the network
/// kept (it holds no data).
async fn remove_network(systemd: &impl Systemd, net: &str) {
    let mut last = String::new();
    for attempt in 0..3 {
        match systemd.remove_network(net).await {
            Ok(()) => return,
            Err(e) => last = e.0,
        }
        if attempt < 2 {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
    tracing::warn!("keeping Podman network {net}: {last}");
}

/// Moves `from` to `to` so that a crash at any point leaves at least one
/// of them complete: `to` written (a copy of the file, or the same
/// symlink) and synced with its directory before `from` is removed.
/// Works across file systems (`/etc` and `/var/lib` may differ).
fn move_durably(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
    let parent = to.parent().expect("an absolute path");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)?;
    let tmp = parent.join(format!(
        ".{}.tmp",
        to.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = fs::remove_file(&tmp);
    let meta = fs::symlink_metadata(from)?;
    if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(from)?, &tmp)?;
    } else if meta.is_file() {
        let mut src = fs::File::open(from)?;
        let mut dst = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(meta.permissions().mode() & 0o7777)
            .open(&tmp)?;
        std::io::copy(&mut src, &mut dst)?;
        dst.sync_all()?;
    } else {
        return Err(std::io::Error::other("not a file or a symlink"));
    }
    fs::rename(&tmp, to)?;
    fsync_dir(parent)?;
    fs::remove_file(from)?;
    if let Some(p) = from.parent() {
        fsync_dir(p)?;
    }
    Ok(())
}

/// Files called `name` in `dir` and its subdirectories (Podman reads
/// Quadlet files from subdirectories too), at most `depth` levels down;
/// symlinks are not followed into.
fn find_named(dir: &Path, name: &str, depth: usize) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let p = e.path();
        if e.file_name().to_str() == Some(name) {
            found.push(p);
        } else if depth > 0 && e.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(find_named(&p, name, depth - 1));
        }
    }
    found
}

/// The `NetworkName=` of a Quadlet `.network` file's `[Network]` section.
fn network_name(text: &str) -> Option<String> {
    let mut section = "";
    let mut name = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') && line.ends_with(']') {
            section = line;
        } else if section == "[Network]"
            && let Some(v) = line.strip_prefix("NetworkName=")
        {
            name = Some(v.trim().trim_matches('"').to_string());
        }
    }
    name.filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::network_name;

    #[test]
    fn a_networks_podman_name_is_its_network_name_key() {
        let t =
            "# x\n[Unit]\nNetworkName=no\n\n[Network]\nSubnet=10.0.0.0/24\nNetworkName=fleet-net\n";
        assert_eq!(network_name(t).as_deref(), Some("fleet-net"));
        assert_eq!(network_name("[Network]\nSubnet=10.0.0.0/24\n"), None);
    }
}
