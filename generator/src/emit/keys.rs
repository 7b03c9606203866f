//! Which Quadlet keys each Podman version knows, read from Podman's own
//! source at each release tag (`data/quadlet-keys.json`, a copy of the
//! team's shared table). Quadlet rejects a whole unit for one unknown key,
//! and then silently generates nothing, so every key we write is checked
//! here first.
//!
//! The shared table stops at 5.8 (and an undated `HEAD`). Podman 6's keys
//! are 5.8's plus what [`PODMAN_6_0_ADDED`] lists, read from
//! `pkg/systemd/quadlet/quadlet.go` of podman-container-tools/podman
//! (formerly containers/podman) at tag v6.0.0-rc1
//! (d0c9bb1b49fb63826997342ad5ddb576bdf6e865) and on the v6.0 release
//! branch (28357f3b5292ee2b93a1081d584576cccde94f7c): the `SupportedKeys`
//! of every group equal v5.8.0's, except `[Volume]`, which adds `UID` and
//! `GID`. No 6.1 tag was in the source we could read, so 6.1 uses 6.0's
//! keys: a lower bound, which is all writing needs (Quadlet refuses an
//! unknown key, never a missing one, and no release from 4.4 to 6.0
//! removed a key).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, OnceLock};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::model::PodmanVersion;

const TABLE: &str = include_str!("../../data/quadlet-keys.json");

type Table = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

type Sections = BTreeMap<String, BTreeSet<String>>;

fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| serde_json::from_str(TABLE).expect("embedded quadlet key table is valid JSON"))
}

/// Keys Podman 6.0's Quadlet knows beyond 5.8's, by group (see the module
/// comment for the source).
pub const PODMAN_6_0_ADDED: &[(&str, &str)] = &[("Volume", "UID"), ("Volume", "GID")];

/// Podman 6's keys: 5.8's plus [`PODMAN_6_0_ADDED`].
fn podman_6() -> &'static Sections {
    static T: OnceLock<Sections> = OnceLock::new();
    T.get_or_init(|| {
        let mut sections = table()
            .get("v5.8.0")
            .expect("the shared key table has 5.8")
            .clone();
        for (group, key) in PODMAN_6_0_ADDED {
            sections
                .entry((*group).to_string())
                .or_default()
                .insert((*key).to_string());
        }
        sections
    })
}

/// One version's sections as hash sets: every key written is looked up
/// (a `.container` file's thirty-odd lines twice, once as it is built and
/// once in the check of the rendered text), and a hash and one comparison
/// cost a fraction of a walk down a B-tree of a hundred keys. The hash is
/// rustc's (`FxHash`): the sets are fixed, only looked up, so a hash that
/// resists chosen collisions buys nothing, and on keys this short it costs
/// less than std's SipHash (2 % of a 1,000-app run's instructions).
type Index = FxHashMap<&'static str, SectionKeys>;

/// The keys of one Quadlet section of one Podman version.
#[derive(Debug)]
pub struct SectionKeys(FxHashSet<&'static str>);

impl SectionKeys {
    pub fn has(&self, key: &str) -> bool {
        self.0.contains(key)
    }
}

/// The index of `sections`.
fn index(sections: &'static Sections) -> Index {
    sections
        .iter()
        .map(|(name, keys)| {
            let keys = SectionKeys(keys.iter().map(String::as_str).collect());
            (name.as_str(), keys)
        })
        .collect()
}

/// The keys of one Podman version, per Quadlet section (`Container`, …).
#[derive(Debug, Clone, Copy)]
pub struct KeySet {
    index: &'static Index,
    pub version: PodmanVersion,
}

impl KeySet {
    /// The keys of `v`, indexed the first time a run asks for them (every
    /// app's contract asks again: `names`).
    pub fn for_version(v: PodmanVersion) -> KeySet {
        static BUILT: Mutex<Vec<(PodmanVersion, &'static Index)>> = Mutex::new(Vec::new());
        let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&(_, index)) = built.iter().find(|(at, _)| *at == v) {
            return KeySet { index, version: v };
        }
        let sections = if v.major == 6 && v.is_known() {
            podman_6()
        } else {
            let name = format!("v{}.{}.0", v.major, v.minor);
            table().get(&name).unwrap_or_else(|| {
                panic!("no Quadlet key table for Podman {v}; versions are checked on input")
            })
        };
        let index: &'static Index = Box::leak(Box::new(index(sections)));
        built.push((v, index));
        KeySet { index, version: v }
    }

    pub fn has(&self, section: &str, key: &str) -> bool {
        self.section(section).is_some_and(|s| s.has(key))
    }

    /// The keys of `section`, or `None` when it is not a section Quadlet
    /// interprets (and so checks keys in).
    pub fn section(&self, section: &str) -> Option<&'static SectionKeys> {
        self.index.get(section)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_exists_only_from_podman_5_5() {
        assert!(!KeySet::for_version(PodmanVersion::new(5, 4)).has("Container", "Memory"));
        assert!(KeySet::for_version(PodmanVersion::new(5, 5)).has("Container", "Memory"));
    }

    #[test]
    fn every_supported_version_has_a_table() {
        for minor in 4..=9 {
            KeySet::for_version(PodmanVersion::new(4, minor));
        }
        for minor in 0..=8 {
            KeySet::for_version(PodmanVersion::new(5, minor));
        }
        for minor in 0..=PodmanVersion::NEWEST.minor {
            KeySet::for_version(PodmanVersion::new(6, minor));
        }
    }

    /// Podman 6.0 = 5.8 + `[Volume] UID=`/`GID=`; 6.1 takes 6.0's keys.
    #[test]
    fn podman_6_is_5_8_plus_volume_uid_and_gid() {
        let v58 = KeySet::for_version(PodmanVersion::new(5, 8));
        for minor in 0..=1 {
            let v6 = KeySet::for_version(PodmanVersion::new(6, minor));
            assert!(v6.has("Volume", "UID") && v6.has("Volume", "GID"));
            assert!(!v58.has("Volume", "UID") && !v58.has("Volume", "GID"));
            let mut added = Vec::new();
            for (group, keys) in v6.index {
                for k in &keys.0 {
                    if !v58.has(group, k) {
                        added.push((*group, *k));
                    }
                }
            }
            added.sort();
            assert_eq!(added, [("Volume", "GID"), ("Volume", "UID")]);
            for (group, keys) in v58.index {
                assert!(keys.0.iter().all(|k| v6.has(group, k)), "{group}");
            }
        }
    }

    /// Quadlet never removed a key from one release to the next, so output
    /// for an older target is valid for every newer one.
    #[test]
    fn no_release_removes_a_key() {
        let mut versions = Vec::new();
        for minor in 4..=9 {
            versions.push(PodmanVersion::new(4, minor));
        }
        for minor in 0..=8 {
            versions.push(PodmanVersion::new(5, minor));
        }
        for minor in 0..=PodmanVersion::NEWEST.minor {
            versions.push(PodmanVersion::new(6, minor));
        }
        for w in versions.windows(2) {
            let (old, new) = (KeySet::for_version(w[0]), KeySet::for_version(w[1]));
            for (group, keys) in old.index {
                for k in &keys.0 {
                    assert!(new.has(group, k), "{} has {group}.{k}, {} not", w[0], w[1]);
                }
            }
        }
    }

    #[test]
    fn embedded_table_matches_the_shared_one_when_present() {
        let shared = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/quadlet-keys-by-podman-version.json"
        );
        if let Ok(text) = std::fs::read_to_string(shared) {
            assert_eq!(
                text, TABLE,
                "generator/data/quadlet-keys.json is out of date: copy it from shared/data"
            );
        }
    }
}
