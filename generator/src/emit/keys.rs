//! Which Quadlet keys each Podman version knows, read from Podman's own
//! source at each release tag (`data/quadlet-keys.json`, a copy of the
//! team's shared table). Quadlet rejects a whole unit for one unknown key,
//! and then silently generates nothing, so every key we write is checked
//! here first.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use crate::model::PodmanVersion;

const TABLE: &str = include_str!("../../data/quadlet-keys.json");

type Table = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| serde_json::from_str(TABLE).expect("embedded quadlet key table is valid JSON"))
}

/// The keys of one Podman version, per Quadlet section (`Container`, …).
#[derive(Debug, Clone, Copy)]
pub struct KeySet {
    sections: &'static BTreeMap<String, BTreeSet<String>>,
    pub version: PodmanVersion,
}

impl KeySet {
    pub fn for_version(v: PodmanVersion) -> KeySet {
        let name = format!("v{}.{}.0", v.major, v.minor);
        let sections = table().get(&name).unwrap_or_else(|| {
            panic!("no Quadlet key table for Podman {v}; versions are checked on input")
        });
        KeySet {
            sections,
            version: v,
        }
    }

    pub fn has(&self, section: &str, key: &str) -> bool {
        self.sections.get(section).is_some_and(|s| s.contains(key))
    }

    /// Whether `section` is one Quadlet interprets (and so checks keys in).
    pub fn is_quadlet_section(&self, section: &str) -> bool {
        self.sections.contains_key(section)
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
