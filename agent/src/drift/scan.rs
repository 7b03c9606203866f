//! The probes: read what the host holds now for what the running
//! generation owns, and hand it to the comparisons. Each scope can be
//! scanned alone (an inotify event in a generation directory needs only
//! the files hashed again).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::compare::{self, Entry, Seen};
use super::owned::Owned;
use super::{Coverage, Finding};
use crate::systemd::Systemd;

/// What one scan looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Owned files and links.
    pub files: bool,
    /// The admin directories' entries for owned units.
    pub admin: bool,
    /// systemd's view of every owned unit.
    pub props: bool,
    /// Apps whose containers are inspected (`None`: all).
    pub images: Option<Option<BTreeSet<String>>>,
}

impl Scope {
    pub fn full() -> Scope {
        Scope {
            files: true,
            admin: true,
            props: true,
            images: Some(None),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Scope::default()
    }

    pub fn is_full(&self) -> bool {
        *self == Scope::full()
    }

    /// Both scopes.
    pub fn widen(&mut self, other: Scope) {
        self.files |= other.files;
        self.admin |= other.admin;
        self.props |= other.props;
        self.images = match (self.images.take(), other.images) {
            (None, x) | (x, None) => x,
            (Some(None), _) | (_, Some(None)) => Some(None),
            (Some(Some(mut a)), Some(Some(b))) => {
                a.extend(b);
                Some(Some(a))
            }
        };
    }
}

/// The findings of the last scan of each scope: a scan of one scope
/// replaces only that scope's.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    pub files: Vec<Finding>,
    pub admin: Vec<Finding>,
    pub props: Vec<Finding>,
    pub images: BTreeMap<String, Finding>,
}

impl Findings {
    pub fn all(&self) -> Vec<Finding> {
        let mut v = self.files.clone();
        v.extend(self.admin.iter().cloned());
        v.extend(self.props.iter().cloned());
        v.extend(self.images.values().cloned());
        // systemd's "masked" (no path) says what the admin directories'
        // link already said (with its path).
        let said: BTreeSet<(super::DriftKind, Option<String>)> = v
            .iter()
            .filter(|f| f.path.is_some())
            .map(|f| (f.kind, f.unit.clone()))
            .collect();
        v.retain(|f| f.path.is_some() || !said.contains(&(f.kind, f.unit.clone())));
        compare::merge(v)
    }
}

/// The sha256 of `bytes`, in lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What is at `path`: with `follow`, through links (a NixOS or Guix
/// `/etc` entry is a link into the store).
fn sha256_of(path: &Path, follow: bool) -> Seen {
    let meta = if follow {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    };
    let Ok(meta) = meta else {
        return Seen::Missing;
    };
    if !meta.file_type().is_file() {
        return Seen::NotRegular;
    }
    let Ok(mut f) = std::fs::File::open(path) else {
        return Seen::Missing;
    };
    let mut h = Sha256::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(_) => return Seen::NotRegular,
        }
    }
    Seen::Hash(hex::encode(h.finalize()))
}

/// Hashes the owned files and reads the owned links.
pub fn files(owned: &Owned) -> Vec<Finding> {
    let seen: BTreeMap<PathBuf, Seen> = owned
        .files
        .iter()
        .map(|f| (f.path.clone(), sha256_of(&f.path, owned.follow_links)))
        .collect();
    let links: BTreeMap<PathBuf, Option<PathBuf>> = owned
        .links
        .iter()
        .map(|l| (l.path.clone(), std::fs::read_link(&l.path).ok()))
        .collect();
    let mut out = compare::files(&owned.files, &seen);
    out.extend(compare::links(&owned.links, &links));
    out
}

fn entry(path: &Path) -> Option<Entry> {
    let m = std::fs::symlink_metadata(path).ok()?;
    let t = m.file_type();
    Some(if t.is_symlink() {
        Entry::Link(std::fs::read_link(path).ok()?)
    } else if t.is_dir() {
        Entry::Dir
    } else {
        Entry::File(m.len())
    })
}

/// Lists what the admin directories under `root` hold for each owned
/// unit: a file of its name, and drop-ins in its `.d` directory.
pub fn admin(owned: &Owned, cov: &Coverage, root: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    for u in &owned.units {
        let mut listing = BTreeMap::new();
        for dir in &cov.admin_dirs {
            let d = root.join(dir);
            let f = d.join(&u.unit);
            if let Some(e) = entry(&f) {
                listing.insert(f, e);
            }
            let dd = d.join(format!("{}.d", u.unit));
            if let Ok(rd) = std::fs::read_dir(&dd) {
                for e in rd.flatten() {
                    let p = e.path();
                    if let Some(x) = entry(&p) {
                        listing.insert(p, x);
                    }
                }
            }
        }
        out.extend(compare::admin_entries(&u.unit, u.app.as_deref(), &listing));
    }
    out
}

/// How long the questions of one scan to systemd, and to Podman, may
/// take together (the `within` of [`props`] and [`images`]): once they
/// hang (a bus call never answered), what was not answered is left as the
/// last scan found it, instead of holding the scan, and whoever waits for
/// it, forever.
pub const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What systemd said of the owned units: the findings, and the units it
/// did not answer for in time (their last findings stand).
#[derive(Debug, Default)]
pub struct PropsFound {
    pub findings: Vec<Finding>,
    pub unanswered: BTreeSet<String>,
}

/// Asks systemd about every owned unit. A unit systemd cannot be asked
/// about (no systemd) gives no finding; once `within` has passed, the
/// units not yet answered are `unanswered`.
pub async fn props(
    systemd: &impl Systemd,
    owned: &Owned,
    cov: &Coverage,
    root: &Path,
    within: std::time::Duration,
) -> PropsFound {
    let deadline = tokio::time::Instant::now() + within;
    let mut out = PropsFound::default();
    for u in &owned.units {
        let p = match tokio::time::timeout_at(deadline, systemd.unit_props(&u.unit)).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => continue,
            Err(_) => {
                out.unanswered.insert(u.unit.clone());
                continue;
            }
        };
        let fragment_ok = cov.fragments.is_empty()
            || p.fragment_path.is_empty()
            || cov
                .fragments
                .iter()
                .any(|pre| Path::new(&p.fragment_path).starts_with(pre));
        let expected = (!fragment_ok).then(|| {
            cov.fragments
                .first()
                .map(|f| f.join(&u.unit))
                .unwrap_or_default()
        });
        out.findings.extend(compare::unit_props(
            &u.unit,
            u.app.as_deref(),
            expected.as_deref(),
            root,
            &p,
        ));
    }
    out
}

/// The image ids each app ran when the generation was last seen healthy.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Baseline {
    pub generation: Option<crate::contract::GenerationId>,
    /// app → image id.
    pub ids: BTreeMap<String, String>,
}

impl Baseline {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("drift/images.json")
    }

    pub fn load(state_dir: &Path) -> Baseline {
        std::fs::read(Self::path(state_dir))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        let p = Self::path(state_dir);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        crate::durable::write_atomic(&p, serde_json::to_string(self)?.as_bytes())
    }
}

/// What an image scan found: each inspected app's finding (or none),
/// and the image ids seen.
pub type ImagesFound = (BTreeMap<String, Option<Finding>>, BTreeMap<String, String>);

/// Inspects the containers of `apps` (`None`: all owned). Returns each
/// inspected app's finding (or none), and the ids seen; an app not
/// answered for `within` (all of them together) is in neither, its last
/// finding standing.
pub async fn images(
    systemd: &impl Systemd,
    owned: &Owned,
    baseline: &Baseline,
    apps: Option<&BTreeSet<String>>,
    within: std::time::Duration,
) -> ImagesFound {
    let deadline = tokio::time::Instant::now() + within;
    let mut found = BTreeMap::new();
    let mut ids = BTreeMap::new();
    for i in &owned.images {
        if apps.is_some_and(|a| !a.contains(&i.app)) {
            continue;
        }
        let Ok(seen) = tokio::time::timeout_at(deadline, systemd.container_image_id(&i.app)).await
        else {
            continue;
        };
        if let Some(s) = &seen {
            ids.insert(i.app.clone(), s.id.clone());
        }
        let f = compare::image(
            &i.app,
            Some(&i.unit),
            &i.image,
            baseline.ids.get(&i.app).map(String::as_str),
            seen.as_ref().map(|s| (s.name.as_str(), s.id.as_str())),
        );
        found.insert(i.app.clone(), f);
    }
    (found, ids)
}
