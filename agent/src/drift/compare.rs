//! The comparisons: what the running generation owns against what was
//! seen on the host, with no I/O (the scans read, these decide).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{DriftKind, Finding};

/// A file the running generation installed: where it is, its sha256
/// (from the generation contract), and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedFile {
    pub path: PathBuf,
    /// Its path in the generation (`quadlet/web.container`).
    pub rel: String,
    pub sha256: String,
    pub unit: Option<String>,
    pub app: Option<String>,
}

/// What a scan found at an owned file's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Missing,
    /// Something other than a regular file (a directory, a link).
    NotRegular,
    /// A regular file with this sha256.
    Hash(String),
}

/// Owned files that are gone or changed.
pub fn files(owned: &[OwnedFile], seen: &BTreeMap<PathBuf, Seen>) -> Vec<Finding> {
    let mut out = Vec::new();
    for f in owned {
        let (kind, detail) = match seen.get(&f.path) {
            None => continue,
            Some(Seen::Missing) => (DriftKind::Removed, "the file is gone".to_string()),
            Some(Seen::NotRegular) => (DriftKind::Modified, "no longer a regular file".to_string()),
            Some(Seen::Hash(h)) if h.eq_ignore_ascii_case(&f.sha256) => continue,
            Some(Seen::Hash(h)) => (
                DriftKind::Modified,
                format!(
                    "sha256 {} where the generation has {}",
                    short(h),
                    short(&f.sha256)
                ),
            ),
        };
        out.push(Finding {
            kind,
            app: f.app.clone(),
            unit: f.unit.clone(),
            path: Some(f.path.clone()),
            detail,
        });
    }
    out
}

fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

/// A link the agent keeps (the running generation's `current`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedLink {
    pub path: PathBuf,
    pub target: PathBuf,
}

/// Owned links that are gone or point elsewhere (`seen`: the target read,
/// `None` when there is no link).
pub fn links(owned: &[OwnedLink], seen: &BTreeMap<PathBuf, Option<PathBuf>>) -> Vec<Finding> {
    let mut out = Vec::new();
    for l in owned {
        let Some(now) = seen.get(&l.path) else {
            continue;
        };
        let (kind, detail) = match now {
            None => (DriftKind::Removed, "the link is gone".to_string()),
            Some(t) if *t == l.target => continue,
            Some(t) => (
                DriftKind::Modified,
                format!(
                    "points to {} instead of {}",
                    t.display(),
                    l.target.display()
                ),
            ),
        };
        out.push(Finding {
            kind,
            app: None,
            unit: None,
            path: Some(l.path.clone()),
            detail,
        });
    }
    out
}

/// The directories where an administrator (or `systemctl edit`,
/// `systemctl mask`, `systemctl set-property`) changes units, relative to
/// the root: what is found there for an owned unit is drift. Vendor
/// directories and generator output are not.
pub const ADMIN_DIRS: [&str; 5] = [
    "etc/systemd/system",
    "etc/systemd/system.control",
    "run/systemd/system",
    "run/systemd/system.control",
    "run/systemd/transient",
];

/// An entry of an admin directory, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A symbolic link, with its target.
    Link(PathBuf),
    /// A regular file, with its size.
    File(u64),
    Dir,
}

/// What the admin directories hold for `unit` (of `app`): `listing` maps
/// each path found (`<dir>/<unit>` and `<dir>/<unit>.d/<name>`) to its
/// entry. A link to `/dev/null` or an empty file named after the unit
/// masks it; another file of that name redefines it; a `.conf` in its
/// `.d` directory is a drop-in.
pub fn admin_entries(
    unit: &str,
    app: Option<&str>,
    listing: &BTreeMap<PathBuf, Entry>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let dropin_dir = format!("{unit}.d");
    for (path, entry) in listing {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let parent = path
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .unwrap_or("");
        let finding = |kind, detail: String| Finding {
            kind,
            app: app.map(str::to_string),
            unit: Some(unit.to_string()),
            path: Some(path.clone()),
            detail,
        };
        if name == unit {
            match entry {
                Entry::Link(t) if t == Path::new("/dev/null") => {
                    out.push(finding(DriftKind::Masked, "masked".into()))
                }
                Entry::File(0) => {
                    out.push(finding(DriftKind::Masked, "masked (empty file)".into()))
                }
                Entry::Link(t) => out.push(finding(
                    DriftKind::Modified,
                    format!("defined by {} (a link to {})", path.display(), t.display()),
                )),
                Entry::File(_) => out.push(finding(
                    DriftKind::Modified,
                    format!(
                        "defined by {}, which outranks the generation's",
                        path.display()
                    ),
                )),
                Entry::Dir => {}
            }
        } else if parent == dropin_dir && name.ends_with(".conf") && !matches!(entry, Entry::Dir) {
            out.push(finding(
                DriftKind::DropInAdded,
                format!("drop-in {}", path.display()),
            ));
        }
    }
    out
}

pub use crate::systemd::UnitProps;

/// An owned unit's state against the generation's: masked, not loaded,
/// defined elsewhere than `expected_fragment` (when known), drop-ins in
/// the admin directories under `root`, or changed on disk since the last
/// daemon-reload (only when nothing else explains it).
pub fn unit_props(
    unit: &str,
    app: Option<&str>,
    expected_fragment: Option<&Path>,
    root: &Path,
    p: &UnitProps,
) -> Vec<Finding> {
    let finding = |kind, path: Option<PathBuf>, detail: String| Finding {
        kind,
        app: app.map(str::to_string),
        unit: Some(unit.to_string()),
        path,
        detail,
    };
    if p.load_state == "masked" || p.unit_file_state.starts_with("masked") {
        return vec![finding(DriftKind::Masked, None, "masked".into())];
    }
    if matches!(p.load_state.as_str(), "not-found" | "error" | "bad-setting") {
        return vec![finding(
            DriftKind::NotLoaded,
            None,
            format!("LoadState={}", p.load_state),
        )];
    }
    let mut out = Vec::new();
    if let Some(want) = expected_fragment
        && !p.fragment_path.is_empty()
        && Path::new(&p.fragment_path) != want
    {
        out.push(finding(
            DriftKind::Modified,
            Some(PathBuf::from(&p.fragment_path)),
            format!(
                "defined by {} instead of {}",
                p.fragment_path,
                want.display()
            ),
        ));
    }
    for d in &p.drop_in_paths {
        let admin = ADMIN_DIRS
            .iter()
            .any(|a| Path::new(d).starts_with(root.join(a)));
        if admin {
            out.push(finding(
                DriftKind::DropInAdded,
                Some(PathBuf::from(d)),
                format!("drop-in {d}"),
            ));
        }
    }
    if out.is_empty() && p.need_daemon_reload {
        out.push(finding(
            DriftKind::Modified,
            None,
            "its files changed on disk since the last daemon-reload".into(),
        ));
    }
    out
}

/// An app's container against the generation: the image reference it was
/// created from (`want`) and the image id recorded when the generation
/// was last seen healthy (`baseline_id`, if any). `seen`: (reference,
/// image id) of the running container; `None` when there is none (a
/// stopped app is the units' business).
pub fn image(
    app: &str,
    unit: Option<&str>,
    want: &str,
    baseline_id: Option<&str>,
    seen: Option<(&str, &str)>,
) -> Option<Finding> {
    let (name, id) = seen?;
    let detail = if name != want {
        format!("runs {name} where the generation has {want}")
    } else if let Some(b) = baseline_id
        && b != id
    {
        format!(
            "runs image {} where {} ran when it was healthy",
            short(id),
            short(b)
        )
    } else {
        return None;
    };
    Some(Finding {
        kind: DriftKind::Image,
        app: Some(app.to_string()),
        unit: unit.map(str::to_string),
        path: None,
        detail,
    })
}

/// Whether `f` is ignored by one of `patterns`: `GLOB` or `KIND:GLOB`,
/// the glob matched against the finding's path, else its unit.
pub fn ignored(f: &Finding, patterns: &[String]) -> bool {
    patterns.iter().any(|p| {
        let (kind, glob) = match p.split_once(':') {
            Some((k, g)) if super::DriftKind::parse(k).is_some() => (super::DriftKind::parse(k), g),
            _ => (None, p.as_str()),
        };
        if kind.is_some_and(|k| k != f.kind) {
            return false;
        }
        let path = f.path.as_ref().map(|p| p.to_string_lossy().to_string());
        path.as_deref()
            .is_some_and(|p| super::glob::matches(glob, p))
            || f.unit
                .as_deref()
                .is_some_and(|u| super::glob::matches(glob, u))
    })
}

/// Findings without repeats (by identity), in a stable order.
pub fn merge(mut all: Vec<Finding>) -> Vec<Finding> {
    all.sort();
    all.dedup_by(|a, b| a.identity() == b.identity());
    all
}

/// What is new in `now` and what is gone from `before` (by identity):
/// only news is signalled.
pub fn diff(before: &[Finding], now: &[Finding]) -> (Vec<Finding>, Vec<Finding>) {
    let ids = |v: &[Finding]| -> Vec<(DriftKind, Option<String>, Option<PathBuf>)> {
        v.iter()
            .map(|f| (f.kind, f.unit.clone(), f.path.clone()))
            .collect()
    };
    let (b, n) = (ids(before), ids(now));
    let added = now
        .iter()
        .zip(&n)
        .filter(|(_, id)| !b.contains(id))
        .map(|(f, _)| f.clone())
        .collect();
    let cleared = before
        .iter()
        .zip(&b)
        .filter(|(_, id)| !n.contains(id))
        .map(|(f, _)| f.clone())
        .collect();
    (added, cleared)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(path: &str, sha: &str) -> OwnedFile {
        OwnedFile {
            path: path.into(),
            rel: "quadlet/web.container".into(),
            sha256: sha.into(),
            unit: Some("web.service".into()),
            app: Some("web".into()),
        }
    }

    #[test]
    fn files_changed_gone_or_replaced() {
        let o = vec![
            owned("/g/quadlet/web.container", "aa"),
            owned("/g/quadlet/db.container", "bb"),
            owned("/g/quadlet/x.network", "cc"),
            owned("/g/quadlet/ok.volume", "dd"),
        ];
        let seen: BTreeMap<PathBuf, Seen> = [
            ("/g/quadlet/web.container", Seen::Hash("ff".into())),
            ("/g/quadlet/db.container", Seen::Missing),
            ("/g/quadlet/x.network", Seen::NotRegular),
            ("/g/quadlet/ok.volume", Seen::Hash("DD".into())),
        ]
        .into_iter()
        .map(|(p, s)| (PathBuf::from(p), s))
        .collect();
        let f = files(&o, &seen);
        let kinds: Vec<(DriftKind, &str)> = f
            .iter()
            .map(|f| (f.kind, f.path.as_ref().unwrap().to_str().unwrap()))
            .collect();
        assert_eq!(
            kinds,
            [
                (DriftKind::Modified, "/g/quadlet/web.container"),
                (DriftKind::Removed, "/g/quadlet/db.container"),
                (DriftKind::Modified, "/g/quadlet/x.network"),
            ]
        );
        assert!(
            f[0].detail.contains("ff") && f[0].detail.contains("aa"),
            "{}",
            f[0].detail
        );
        // Not looked at: no finding.
        assert!(files(&o, &BTreeMap::new()).is_empty());
    }

    #[test]
    fn the_running_link() {
        let o = vec![OwnedLink {
            path: "/run/windlass/current".into(),
            target: "/var/lib/windlass/generations/3".into(),
        }];
        let at = |t: Option<&str>| -> BTreeMap<PathBuf, Option<PathBuf>> {
            [(PathBuf::from("/run/windlass/current"), t.map(PathBuf::from))].into()
        };
        assert!(links(&o, &at(Some("/var/lib/windlass/generations/3"))).is_empty());
        assert_eq!(links(&o, &at(None))[0].kind, DriftKind::Removed);
        let m = links(&o, &at(Some("/var/lib/windlass/generations/2")));
        assert_eq!(m[0].kind, DriftKind::Modified);
        assert!(m[0].detail.contains("generations/2"));
    }

    #[test]
    fn masks_redefinitions_and_drop_ins_in_admin_dirs() {
        let l: BTreeMap<PathBuf, Entry> = [
            (
                "/etc/systemd/system/web.service",
                Entry::Link("/dev/null".into()),
            ),
            ("/run/systemd/system/web.service", Entry::File(0)),
            ("/etc/systemd/system.control/web.service", Entry::File(120)),
            (
                "/etc/systemd/system/web.service.d/override.conf",
                Entry::File(40),
            ),
            (
                "/etc/systemd/system/web.service.d/notes.txt",
                Entry::File(40),
            ),
            ("/etc/systemd/system/web.service.d", Entry::Dir),
            ("/etc/systemd/system/other.service.d/x.conf", Entry::File(4)),
        ]
        .into_iter()
        .map(|(p, e)| (PathBuf::from(p), e))
        .collect();
        let f = admin_entries("web.service", Some("web"), &l);
        let got: Vec<(DriftKind, &str)> = f
            .iter()
            .map(|f| (f.kind, f.path.as_ref().unwrap().to_str().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                (DriftKind::Masked, "/etc/systemd/system/web.service"),
                (
                    DriftKind::DropInAdded,
                    "/etc/systemd/system/web.service.d/override.conf"
                ),
                (
                    DriftKind::Modified,
                    "/etc/systemd/system.control/web.service"
                ),
                (DriftKind::Masked, "/run/systemd/system/web.service"),
            ]
        );
        assert!(f.iter().all(|f| f.app.as_deref() == Some("web")));
    }

    #[test]
    fn unit_properties() {
        let gen_path = Path::new("/run/systemd/generator/web.service");
        let ok = UnitProps {
            load_state: "loaded".into(),
            fragment_path: gen_path.display().to_string(),
            drop_in_paths: vec![
                // Vendor drop-ins are the distribution's, not drift.
                "/usr/lib/systemd/system/service.d/10-timeout.conf".into(),
            ],
            need_daemon_reload: false,
            unit_file_state: "generated".into(),
        };
        let root = Path::new("/");
        let check = |p: &UnitProps| unit_props("web.service", Some("web"), Some(gen_path), root, p);
        assert!(check(&ok).is_empty());
        let kinds = |v: Vec<Finding>| v.into_iter().map(|f| f.kind).collect::<Vec<_>>();
        let masked = UnitProps {
            load_state: "masked".into(),
            ..ok.clone()
        };
        assert_eq!(kinds(check(&masked)), [DriftKind::Masked]);
        let gone = UnitProps {
            load_state: "not-found".into(),
            ..ok.clone()
        };
        assert_eq!(kinds(check(&gone)), [DriftKind::NotLoaded]);
        let other = UnitProps {
            fragment_path: "/etc/systemd/system/web.service".into(),
            drop_in_paths: vec!["/etc/systemd/system/web.service.d/override.conf".into()],
            need_daemon_reload: true,
            ..ok.clone()
        };
        assert_eq!(
            kinds(check(&other)),
            [DriftKind::Modified, DriftKind::DropInAdded]
        );
        let stale = UnitProps {
            need_daemon_reload: true,
            ..ok.clone()
        };
        assert_eq!(kinds(check(&stale)), [DriftKind::Modified]);
        // Under a test root, only its admin directories count.
        let under = unit_props(
            "web.service",
            None,
            None,
            Path::new("/tmp/root"),
            &UnitProps {
                drop_in_paths: vec![
                    "/etc/systemd/system/web.service.d/a.conf".into(),
                    "/tmp/root/run/systemd/system/web.service.d/b.conf".into(),
                ],
                ..ok.clone()
            },
        );
        assert_eq!(under.len(), 1);
        assert!(under[0].detail.contains("b.conf"));
    }

    #[test]
    fn images() {
        let want = "localhost/app:2";
        assert!(image("web", None, want, None, None).is_none());
        assert!(image("web", None, want, Some("i1"), Some((want, "i1"))).is_none());
        assert!(image("web", None, want, None, Some((want, "i9"))).is_none());
        let other = image(
            "web",
            Some("web.service"),
            want,
            None,
            Some(("localhost/app:1", "i0")),
        )
        .unwrap();
        assert_eq!(other.kind, DriftKind::Image);
        assert!(other.detail.contains("localhost/app:1"));
        let repulled = image("web", None, want, Some("i1"), Some((want, "i2"))).unwrap();
        assert!(repulled.detail.contains("i2"), "{}", repulled.detail);
    }

    #[test]
    fn ignore_patterns_by_path_unit_and_kind() {
        let f = Finding {
            kind: DriftKind::DropInAdded,
            app: Some("web".into()),
            unit: Some("web.service".into()),
            path: Some("/etc/systemd/system/web.service.d/50-limits.conf".into()),
            detail: String::new(),
        };
        assert!(ignored(&f, &["/etc/systemd/system/web.service.d/*".into()]));
        assert!(ignored(&f, &["drop-in-added:web.service".into()]));
        assert!(!ignored(&f, &["masked:web.service".into()]));
        assert!(ignored(&f, &["web.*".into()]));
        assert!(!ignored(&f, &["db.*".into(), "/run/**".into()]));
        assert!(!ignored(&f, &[]));
    }

    #[test]
    fn merge_and_diff_by_identity() {
        let f = |kind, unit: &str, detail: &str| Finding {
            kind,
            app: None,
            unit: Some(unit.into()),
            path: None,
            detail: detail.into(),
        };
        let a = f(DriftKind::Masked, "a.service", "masked");
        let b = f(DriftKind::Modified, "b.service", "x");
        let b2 = f(DriftKind::Modified, "b.service", "y");
        let merged = merge(vec![b.clone(), a.clone(), b2.clone()]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].kind, DriftKind::Modified);
        // The same drift with another detail is not news.
        let (added, cleared) = diff(&[a.clone(), b.clone()], std::slice::from_ref(&b2));
        assert!(added.is_empty());
        assert_eq!(cleared, vec![a.clone()]);
        let (added, cleared) = diff(&[b], &[a.clone(), b2]);
        assert_eq!(added, vec![a]);
        assert!(cleared.is_empty());
    }

    #[test]
    fn every_kind_has_a_name_that_parses_back() {
        for k in DriftKind::ALL {
            assert_eq!(DriftKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        // The generator checks `KIND:` prefixes of ignore patterns
        // against the contract's list: the same names, in the same order.
        assert_eq!(
            DriftKind::ALL.map(DriftKind::as_str),
            windlass_contract::DRIFT_KINDS
        );
    }
}
