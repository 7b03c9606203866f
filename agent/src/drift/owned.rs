//! What the running generation owns, built from its manifest and the
//! platform: the files to hash, the links to read, the units to ask
//! systemd about, the containers to inspect, and each app's policy.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::compare::{OwnedFile, OwnedLink};
use super::{Coverage, Finding};
use crate::contract::{App, GenerationId, Manifest, unit_of};

/// An app's drift policy, resolved by the generator (the fleet default
/// and the app's own keys).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub restore: bool,
    pub ignore: Vec<String>,
}

impl Policy {
    pub fn of(app: &App) -> Policy {
        Policy {
            restore: app.drift.mode == crate::contract::DriftMode::Restore,
            ignore: app.drift.ignore.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedUnit {
    pub unit: String,
    pub app: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedImage {
    pub app: String,
    pub unit: String,
    /// The image reference the generation runs.
    pub image: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owned {
    pub generation: Option<GenerationId>,
    pub files: Vec<OwnedFile>,
    pub links: Vec<OwnedLink>,
    pub units: Vec<OwnedUnit>,
    pub images: Vec<OwnedImage>,
    pub policy: BTreeMap<String, Policy>,
    /// The apps' own services (what a restore may restart).
    pub services: std::collections::BTreeSet<String>,
    /// Owned files are compared through links ([`Coverage::follow_links`]).
    pub follow_links: bool,
}

/// The app a generator output file belongs to, if one does.
pub fn app_of_file(m: &Manifest, rel: &str) -> Option<String> {
    if let Some(u) = unit_of(rel)
        && let Some(a) = app_of_unit(m, &u)
    {
        return Some(a);
    }
    let stem = rel.rsplit('/').next()?.split('.').next()?;
    if let Some(a) = m.app(stem) {
        return Some(a.name.clone());
    }
    // A named volume of one app.
    if rel.ends_with(".volume") {
        let mut owners = m
            .apps
            .iter()
            .filter(|a| a.volumes.iter().any(|v| v == stem));
        if let (Some(a), None) = (owners.next(), owners.next()) {
            return Some(a.name.clone());
        }
    }
    None
}

/// The app a unit belongs to: its service, or one of its jobs' units.
pub fn app_of_unit(m: &Manifest, unit: &str) -> Option<String> {
    let base = unit
        .strip_suffix(".service")
        .or_else(|| unit.strip_suffix(".timer"))?;
    m.apps
        .iter()
        .find(|a| a.unit == unit || a.jobs.iter().any(|j| j == base))
        .map(|a| a.name.clone())
}

/// What `generation` (described by `m`) owns on a platform covering
/// `cov`: `files` are (absolute path, path in the generation, sha256) and
/// `links` the links kept for it, as the platform lists them.
pub fn build(
    generation: GenerationId,
    m: &Manifest,
    cov: &Coverage,
    files: Vec<(PathBuf, String, String)>,
    links: Vec<OwnedLink>,
) -> Owned {
    let files = if cov.files {
        files
            .into_iter()
            .map(|(path, rel, sha256)| OwnedFile {
                unit: unit_of(&rel),
                app: app_of_file(m, &rel),
                path,
                rel,
                sha256,
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut units: Vec<OwnedUnit> = Vec::new();
    if cov.units {
        let mut names: Vec<String> = m.units().into_keys().collect();
        // NixOS and Guix manifests list no files: their apps' units.
        for a in &m.apps {
            if !a.unit.is_empty() {
                names.push(a.unit.clone());
            }
        }
        names.sort();
        names.dedup();
        units = names
            .into_iter()
            .map(|unit| OwnedUnit {
                app: app_of_unit(m, &unit),
                unit,
            })
            .collect();
    }
    let images = if cov.images {
        m.apps
            .iter()
            .filter(|a| !a.image.is_empty())
            .map(|a| OwnedImage {
                app: a.name.clone(),
                unit: a.unit.clone(),
                image: a.image.clone(),
            })
            .collect()
    } else {
        Vec::new()
    };
    Owned {
        generation: Some(generation),
        files,
        links: if cov.files { links } else { Vec::new() },
        units,
        images,
        policy: m
            .apps
            .iter()
            .map(|a| (a.name.clone(), Policy::of(a)))
            .collect(),
        follow_links: cov.follow_links,
        services: m
            .apps
            .iter()
            .filter(|a| !a.unit.is_empty())
            .map(|a| a.unit.clone())
            .collect(),
    }
}

impl Owned {
    /// The policy a finding falls under: its app's; for what apps share,
    /// what every app agrees on (ignored only where all ignore it,
    /// restored only where all restore; the fleet-wide keys are part of
    /// every app's).
    pub fn policy_for(&self, app: Option<&str>) -> Policy {
        if let Some(p) = app.and_then(|a| self.policy.get(a)) {
            return p.clone();
        }
        let mut all = self.policy.values();
        let Some(first) = all.next() else {
            return Policy::default();
        };
        let mut p = first.clone();
        for q in all {
            p.restore &= q.restore;
            p.ignore.retain(|g| q.ignore.contains(g));
        }
        p
    }

    /// `findings` without those their policy ignores.
    pub fn unignored(&self, findings: Vec<Finding>) -> Vec<Finding> {
        findings
            .into_iter()
            .filter(|f| !super::compare::ignored(f, &self.policy_for(f.app.as_deref()).ignore))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest::from_slice(
            br#"{"format":1,"apps":[
              {"name":"web","unit":"web.service","image":"docker.io/library/nginx:1","jobs":["web-backup"],"volumes":["web-data"]},
              {"name":"db","unit":"db.service","image":"docker.io/library/postgres:16"}],
             "files":[{"path":"quadlet/web.container","sha256":"aa"},{"path":"quadlet/web-data.volume","sha256":"bb"},
              {"path":"quadlet/net.network","sha256":"cc"},{"path":"systemd/web-backup.timer","sha256":"dd"},
              {"path":"quadlet/db.container","sha256":"ee"},{"path":"nixos/apps/db.nix","sha256":"ff"}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn files_and_units_belong_to_their_apps() {
        let m = manifest();
        assert_eq!(
            app_of_file(&m, "quadlet/web.container").as_deref(),
            Some("web")
        );
        assert_eq!(
            app_of_file(&m, "quadlet/web-data.volume").as_deref(),
            Some("web")
        );
        assert_eq!(app_of_file(&m, "quadlet/net.network"), None);
        assert_eq!(
            app_of_file(&m, "systemd/web-backup.timer").as_deref(),
            Some("web")
        );
        assert_eq!(app_of_file(&m, "nixos/apps/db.nix").as_deref(), Some("db"));
        assert_eq!(
            app_of_unit(&m, "web-backup.service").as_deref(),
            Some("web")
        );
        assert_eq!(app_of_unit(&m, "net-network.service"), None);
    }

    #[test]
    fn coverage_decides_what_is_owned() {
        let m = manifest();
        let files = vec![(
            PathBuf::from("/g/1/quadlet/web.container"),
            "quadlet/web.container".to_string(),
            "aa".to_string(),
        )];
        let none = build(
            GenerationId(1),
            &m,
            &Coverage::default(),
            files.clone(),
            vec![],
        );
        assert!(none.files.is_empty() && none.units.is_empty() && none.images.is_empty());
        let all = Coverage {
            files: true,
            units: true,
            images: true,
            ..Default::default()
        };
        let o = build(GenerationId(1), &m, &all, files, vec![]);
        assert_eq!(o.files[0].app.as_deref(), Some("web"));
        assert_eq!(o.files[0].unit.as_deref(), Some("web.service"));
        let units: Vec<&str> = o.units.iter().map(|u| u.unit.as_str()).collect();
        assert_eq!(
            units,
            [
                "db.service",
                "net-network.service",
                "web-backup.timer",
                "web-data-volume.service",
                "web.service"
            ]
        );
        assert_eq!(o.images.len(), 2);
    }

    #[test]
    fn shared_findings_follow_what_all_apps_agree_on() {
        let mut o = Owned::default();
        o.policy.insert(
            "a".into(),
            Policy {
                restore: true,
                ignore: vec!["*.network".into(), "x".into()],
            },
        );
        o.policy.insert(
            "b".into(),
            Policy {
                restore: false,
                ignore: vec!["*.network".into()],
            },
        );
        let shared = o.policy_for(None);
        assert!(!shared.restore);
        assert_eq!(shared.ignore, ["*.network"]);
        assert!(o.policy_for(Some("a")).restore);
    }
}
