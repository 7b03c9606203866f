//! Wave selectors → explicit host lists, against the hosts known from
//! heartbeats when a rollout starts (the lists are then stored in the
//! rollout's state: hosts that appear later do not join). Pure.
//!
//! Rules: an explicit host must be known; a host listed explicitly in
//! two waves is an error; a host named explicitly anywhere belongs to
//! that wave and is skipped by every label and `rest` selector (the
//! operator's explicit word wins); between selectors the first wave
//! wins. A label wave that matches nothing is an error (most likely a
//! typo); an empty `rest` wave is fine. Lists are sorted.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::HostId;
use crate::spec::{HostSelector, WaveSpec};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("wave {wave:?}: host {host:?} is unknown (no heartbeat from it)")]
    UnknownHost { wave: String, host: HostId },
    #[error("host {host:?} is listed in wave {first:?} and in wave {second:?}")]
    DuplicateHost {
        host: HostId,
        first: String,
        second: String,
    },
    #[error("wave {wave:?}: no host has the labels {labels}")]
    NoMatch { wave: String, labels: String },
}

/// The hosts of each wave, in wave order. `known`: every host with a
/// heartbeat, and its labels.
pub fn resolve(
    waves: &[WaveSpec],
    known: &BTreeMap<HostId, BTreeMap<String, String>>,
) -> Result<Vec<Vec<HostId>>, SelectError> {
    let mut explicit: BTreeMap<&str, &str> = BTreeMap::new();
    for w in waves {
        if let HostSelector::Hosts(hosts) = &w.hosts {
            for h in hosts {
                if !known.contains_key(h) {
                    return Err(SelectError::UnknownHost {
                        wave: w.name.clone(),
                        host: h.clone(),
                    });
                }
                if let Some(first) = explicit.insert(h, &w.name) {
                    return Err(SelectError::DuplicateHost {
                        host: h.clone(),
                        first: first.to_string(),
                        second: w.name.clone(),
                    });
                }
            }
        }
    }
    let mut taken: BTreeSet<&str> = explicit.keys().copied().collect();
    let mut out = Vec::with_capacity(waves.len());
    for w in waves {
        let hosts: BTreeSet<&str> = match &w.hosts {
            HostSelector::Hosts(hosts) => hosts.iter().map(String::as_str).collect(),
            HostSelector::Labels(want) => {
                let hosts: BTreeSet<&str> = known
                    .iter()
                    .filter(|(h, labels)| {
                        !taken.contains(h.as_str())
                            && want.iter().all(|(k, v)| labels.get(k) == Some(v))
                    })
                    .map(|(h, _)| h.as_str())
                    .collect();
                if hosts.is_empty() {
                    let labels: Vec<String> =
                        want.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    return Err(SelectError::NoMatch {
                        wave: w.name.clone(),
                        labels: labels.join(","),
                    });
                }
                hosts
            }
            HostSelector::Rest => known
                .keys()
                .map(String::as_str)
                .filter(|h| !taken.contains(h))
                .collect(),
        };
        taken.extend(hosts.iter().copied());
        out.push(hosts.into_iter().map(str::to_string).collect());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> BTreeMap<HostId, BTreeMap<String, String>> {
        let mut m = BTreeMap::new();
        for (h, site) in [
            ("a", "north"),
            ("b", "north"),
            ("c", "south"),
            ("d", "south"),
            ("e", "north"),
        ] {
            m.insert(
                h.to_string(),
                BTreeMap::from([("site".to_string(), site.to_string())]),
            );
        }
        m
    }

    fn wave(name: &str, hosts: HostSelector) -> WaveSpec {
        WaveSpec {
            name: name.into(),
            hosts,
        }
    }

    fn hosts(hs: &[&str]) -> HostSelector {
        HostSelector::Hosts(hs.iter().map(|h| h.to_string()).collect())
    }

    fn labels(k: &str, v: &str) -> HostSelector {
        HostSelector::Labels(BTreeMap::from([(k.to_string(), v.to_string())]))
    }

    #[test]
    fn explicit_labels_and_rest_resolve_sorted_and_disjoint() {
        let waves = [
            wave("canary", hosts(&["e"])),
            wave("north", labels("site", "north")),
            wave("rest", HostSelector::Rest),
        ];
        let r = resolve(&waves, &known()).unwrap();
        assert_eq!(r, vec![vec!["e"], vec!["a", "b"], vec!["c", "d"]]);
    }

    #[test]
    fn an_explicit_host_is_not_taken_by_an_earlier_label_wave() {
        let waves = [
            wave("north", labels("site", "north")),
            wave("late", hosts(&["a"])),
        ];
        let r = resolve(&waves, &known()).unwrap();
        assert_eq!(r, vec![vec!["b", "e"], vec!["a"]]);
    }

    #[test]
    fn between_selectors_the_first_wave_wins() {
        let waves = [
            wave("north", labels("site", "north")),
            wave("all", HostSelector::Rest),
        ];
        assert_eq!(
            resolve(&waves, &known()).unwrap(),
            vec![vec!["a", "b", "e"], vec!["c", "d"]]
        );
        let mut k = known();
        k.get_mut("a").unwrap().insert("tier".into(), "1".into());
        let waves = [
            wave("t1", labels("tier", "1")),
            wave("n", labels("site", "north")),
        ];
        assert_eq!(
            resolve(&waves, &k).unwrap(),
            vec![vec!["a"], vec!["b", "e"]]
        );
    }

    #[test]
    fn unknown_explicit_host_is_an_error() {
        let e = resolve(&[wave("canary", hosts(&["zz"]))], &known()).unwrap_err();
        assert_eq!(
            e,
            SelectError::UnknownHost {
                wave: "canary".into(),
                host: "zz".into()
            }
        );
    }

    #[test]
    fn explicit_duplicates_are_an_error() {
        let e = resolve(
            &[wave("one", hosts(&["a"])), wave("two", hosts(&["b", "a"]))],
            &known(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "host \"a\" is listed in wave \"one\" and in wave \"two\""
        );
    }

    #[test]
    fn a_label_wave_matching_nothing_is_an_error_an_empty_rest_is_not() {
        let e = resolve(&[wave("west", labels("site", "west"))], &known()).unwrap_err();
        assert!(matches!(e, SelectError::NoMatch { .. }), "{e}");
        let r = resolve(
            &[
                wave("all", hosts(&["a", "b", "c", "d", "e"])),
                wave("rest", HostSelector::Rest),
            ],
            &known(),
        )
        .unwrap();
        assert_eq!(r[1], Vec::<String>::new());
    }
}
