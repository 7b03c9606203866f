//! The activation plan: which units to start, stop and restart to go from
//! the running generation's units to the target's, compared by the sha256
//! of the file that defines each (the `compare_units` model of NixOS's
//! switch-to-configuration). Pure: no host is touched here.

use std::collections::BTreeMap;

/// Units by name, each with the sha256 of its definition.
pub type Units = BTreeMap<String, String>;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// New in the target.
    pub start: Vec<String>,
    /// Gone from the target.
    pub stop: Vec<String>,
    /// In both, defined differently.
    pub restart: Vec<String>,
    /// In both, defined the same.
    pub unchanged: Vec<String>,
    /// Services of jobs, new or changed: their timer starts them, not the
    /// activation.
    pub timer_driven: Vec<String>,
}

impl Plan {
    /// Every unit the activation (re)starts, in name order: what the
    /// health gate waits for.
    pub fn changed(&self) -> Vec<String> {
        let mut v: Vec<String> = self.start.iter().chain(&self.restart).cloned().collect();
        v.sort();
        v
    }
}

pub fn plan(running: &Units, target: &Units) -> Plan {
    let mut p = Plan {
        stop: running
            .keys()
            .filter(|u| !target.contains_key(*u))
            .cloned()
            .collect(),
        ..Plan::default()
    };
    for (unit, sha) in target {
        let before = running.get(unit);
        if before == Some(sha) {
            p.unchanged.push(unit.clone());
            continue;
        }
        if let Some(base) = unit.strip_suffix(".service")
            && target.contains_key(&format!("{base}.timer"))
        {
            p.timer_driven.push(unit.clone());
            continue;
        }
        if before.is_some() {
            p.restart.push(unit.clone());
        } else {
            p.start.push(unit.clone());
        }
    }
    p
}

/// The order to stop every unit of a generation in: timers (so none
/// starts its service again), then services, then pods, networks and
/// volumes (what the services needed). Name order within each.
pub fn teardown_order<'a>(units: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let rank = |u: &str| {
        if u.ends_with(".timer") {
            0
        } else if u.ends_with("-pod.service") {
            2
        } else if u.ends_with("-network.service") || u.ends_with("-volume.service") {
            3
        } else {
            1
        }
    };
    let mut v: Vec<String> = units.into_iter().cloned().collect();
    v.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(list: &[(&str, &str)]) -> Units {
        list.iter()
            .map(|(u, h)| (u.to_string(), h.to_string()))
            .collect()
    }

    #[test]
    fn new_units_start_removed_ones_stop_changed_ones_restart() {
        let running = units(&[("a.service", "1"), ("b.service", "1"), ("c.service", "1")]);
        let target = units(&[("a.service", "1"), ("b.service", "2"), ("d.service", "1")]);
        let p = plan(&running, &target);
        assert_eq!(p.start, ["d.service"]);
        assert_eq!(p.stop, ["c.service"]);
        assert_eq!(p.restart, ["b.service"]);
        assert_eq!(p.unchanged, ["a.service"]);
        assert!(p.timer_driven.is_empty());
        assert_eq!(p.changed(), ["b.service", "d.service"]);
    }

    #[test]
    fn a_jobs_service_is_left_to_its_timer() {
        let running = units(&[("j.service", "1"), ("j.timer", "1")]);
        let target = units(&[
            ("j.service", "2"),
            ("j.timer", "2"),
            ("k.service", "1"),
            ("k.timer", "1"),
        ]);
        let p = plan(&running, &target);
        assert_eq!(p.restart, ["j.timer"]);
        assert_eq!(p.start, ["k.timer"]);
        assert_eq!(p.timer_driven, ["j.service", "k.service"]);
        assert_eq!(p.changed(), ["j.timer", "k.timer"]);
    }

    #[test]
    fn the_first_generation_starts_everything_and_the_empty_one_stops_everything() {
        let g = units(&[("a.service", "1"), ("b.network", "1")]);
        let none = Units::new();
        let up = plan(&none, &g);
        assert_eq!(up.start, ["a.service", "b.network"]);
        assert!(up.stop.is_empty() && up.restart.is_empty());
        let down = plan(&g, &none);
        assert_eq!(down.stop, ["a.service", "b.network"]);
        assert!(down.changed().is_empty());
        assert_eq!(plan(&g, &g).unchanged.len(), 2);
    }

    #[test]
    fn a_generation_is_taken_down_timers_first_then_apps_then_what_they_need() {
        let g = units(&[
            ("a-network.service", "1"),
            ("a.service", "1"),
            ("data-volume.service", "1"),
            ("j.service", "1"),
            ("j.timer", "1"),
            ("p-pod.service", "1"),
            ("z.service", "1"),
        ]);
        assert_eq!(
            teardown_order(g.keys()),
            [
                "j.timer",
                "a.service",
                "j.service",
                "z.service",
                "p-pod.service",
                "a-network.service",
                "data-volume.service"
            ]
        );
    }
}
