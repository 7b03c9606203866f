//! Hostile state: whatever is found in the state directory when windlassd
//! starts — truncated, empty or foreign records, a directory, a FIFO or a
//! link where a record should be, ids that are no ids, a record under
//! another record's name, unfinished records — the real windlassd (on a
//! real dbus-daemon, `--systemd none`) takes its bus name, resolves or
//! sets aside every entry (moved to `operations/damaged/`, listed in
//! Status), and leaves the host running the generation it has selected
//! (running = selected) with no operation in flight. One row per case.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// How a case damages a state directory whose host committed generation
/// 1 and has staged generation 2. `current` is the run directory's link.
struct Case {
    name: &'static str,
    damage: fn(ops: &Path, current: &Path, gen2: &Path),
    /// Entries expected in `operations/damaged/` afterwards.
    set_aside: usize,
    /// The generation running and selected afterwards.
    ends_on: &'static str,
}

/// An unfinished switch 1 → 2 in `phase`, as the first agent wrote it.
fn switch_record(id: &str, phase: &str) -> String {
    format!(
        r#"{{"id":"{id}","kind":"switch","phase":"{phase}","result":null,"error":"","started_at":1,"finished_at":null,"from_generation":"1","to_generation":"2","changed_units":["web.service"],"confirm":"auto","deadline_sec":5,"deadline_from_option":false,"history":[["recorded",1],["arming",1],["activating",1]]}}"#
    )
}

/// The host had activated generation 2 when the record was lost.
fn running_2(current: &Path, gen2: &Path) {
    windlass_agent::durable::swap_symlink(current, gen2).unwrap();
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

const ID: &str = "001700000000x000";

const CASES: &[Case] = &[
    Case {
        name: "truncated unfinished switch",
        damage: |ops, cur, g2| {
            let full = switch_record(ID, "health-gate");
            std::fs::write(ops.join(format!("{ID}.json")), &full[..full.len() / 2]).unwrap();
            running_2(cur, g2);
        },
        set_aside: 1,
        ends_on: "1",
    },
    Case {
        name: "empty record",
        damage: |ops, cur, g2| {
            std::fs::write(ops.join(format!("{ID}.json")), b"").unwrap();
            running_2(cur, g2);
        },
        set_aside: 1,
        ends_on: "1",
    },
    Case {
        name: "directory named like a record",
        damage: |ops, _, _| std::fs::create_dir_all(ops.join("zz.json/inside")).unwrap(),
        set_aside: 1,
        ends_on: "1",
    },
    Case {
        name: "FIFO named like a record",
        damage: |ops, _, _| mkfifo(&ops.join(format!("{ID}.json"))),
        set_aside: 1,
        ends_on: "1",
    },
    Case {
        name: "link to another file",
        damage: |ops, _, _| {
            std::os::unix::fs::symlink("/etc/passwd", ops.join(format!("{ID}.json"))).unwrap()
        },
        set_aside: 1,
        ends_on: "1",
    },
    Case {
        name: "foreign names",
        damage: |ops, _, _| {
            std::fs::write(ops.join("notes.txt"), b"hello").unwrap();
            std::fs::write(ops.join("a-b.json"), switch_record("a-b", "recorded")).unwrap();
        },
        set_aside: 2,
        ends_on: "1",
    },
    Case {
        name: "id that is not valid in an object path",
        damage: |ops, cur, g2| {
            std::fs::write(
                ops.join(format!("{ID}.json")),
                switch_record("x/../y", "health-gate"),
            )
            .unwrap();
            running_2(cur, g2);
        },
        set_aside: 1,
        ends_on: "1",
    },
    Case {
        name: "record under another record's name",
        damage: |ops, cur, g2| {
            std::fs::write(
                ops.join(format!("{ID}.json")),
                switch_record("001700000000x999", "health-gate"),
            )
            .unwrap();
            running_2(cur, g2);
        },
        set_aside: 1,
        ends_on: "1",
    },
    Case {
        name: "record larger than any record",
        damage: |ops, _, _| {
            let big = vec![b' '; 17 << 20];
            std::fs::write(ops.join(format!("{ID}.json")), big).unwrap();
        },
        set_aside: 1,
        ends_on: "1",
    },
    Case {
        name: "temporary file left by a crash",
        damage: |ops, _, _| {
            std::fs::write(ops.join(format!(".{ID}.json.tmp-1-0")), b"{").unwrap();
        },
        set_aside: 0,
        ends_on: "1",
    },
    Case {
        name: "unfinished switch in health-gate",
        damage: |ops, cur, g2| {
            std::fs::write(
                ops.join(format!("{ID}.json")),
                switch_record(ID, "health-gate"),
            )
            .unwrap();
            running_2(cur, g2);
        },
        set_aside: 0,
        ends_on: "1",
    },
    Case {
        name: "unfinished switch in committing",
        damage: |ops, cur, g2| {
            std::fs::write(
                ops.join(format!("{ID}.json")),
                switch_record(ID, "committing"),
            )
            .unwrap();
            running_2(cur, g2);
        },
        set_aside: 0,
        ends_on: "2",
    },
    Case {
        name: "lost record, host left on 2",
        damage: |_, cur, g2| running_2(cur, g2),
        set_aside: 0,
        ends_on: "1",
    },
];

fn link_name(p: &Path) -> String {
    std::fs::read_link(p)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
        .unwrap_or_else(|| "-".into())
}

#[test]
fn whatever_is_in_the_state_directory_the_agent_starts_on_its_selected_generation() {
    let mut table = vec![format!(
        "{:<40} {:<8} {:<8} {:<8} {:<6} {}",
        "case", "running", "selected", "aside", "secs", "ok"
    )];
    let mut failures = Vec::new();
    for case in CASES {
        let bus = bus();
        let tmp = tempfile::tempdir().unwrap();
        let (state, run) = (tmp.path().join("state"), tmp.path().join("run"));
        let (g1, g2) = (tmp.path().join("g1"), tmp.path().join("g2"));
        generation(&basic_fleet(), &g1, |t| t.to_string());
        generation(&basic_fleet(), &g2, |t| t.replace("\"8080\"", "\"8081\""));
        {
            let a = agent(&bus, &state, &run, "nogroup-x", &[]);
            for g in [&g1, &g2] {
                assert!(a.ctl(&["stage", g.to_str().unwrap()]).status.success());
            }
            assert!(a.ctl(&["switch", "1"]).status.success());
        }
        let ops = state.join("operations");
        (case.damage)(&ops, &run.join("current"), &state.join("generations/2"));
        let start = Instant::now();
        // agent() waits until windlassd owns its name: it did not hang or
        // crash on what it found.
        let a = agent(&bus, &state, &run, "nogroup-x", &[]);
        a.wait_idle();
        let secs = start.elapsed().as_secs_f64();
        let running = link_name(&run.join("current"));
        let selected = link_name(&state.join("profiles/system"));
        let aside = std::fs::read_dir(ops.join("damaged"))
            .map(|d| d.count())
            .unwrap_or(0);
        let status: serde_json::Value =
            serde_json::from_str(&stdout(&a.ctl(&["--json", "status"]))).unwrap();
        let listed = status["damaged_records"].as_array().map_or(0, |v| v.len());
        let records = windlass_agent::store::Store::new(&state).scan();
        let ok = running == case.ends_on
            && selected == case.ends_on
            && aside == case.set_aside
            && listed == case.set_aside
            && records.damaged.is_empty()
            && records.records.iter().all(|r| r.finished())
            && secs < 20.0
            && a.ctl(&["status"]).status.success();
        table.push(format!(
            "{:<40} {running:<8} {selected:<8} {aside:<8} {secs:<6.1} {}",
            case.name,
            if ok { "ok" } else { "FAIL" }
        ));
        if !ok {
            failures.push(format!(
                "{}: running {running}, selected {selected}, {aside} set aside ({listed} listed), \
                 damaged left {:?}, log:\n{}",
                case.name,
                records.damaged,
                std::fs::read_to_string(&a.log).unwrap_or_default()
            ));
        }
        drop(a);
        assert!(Duration::from_secs_f64(secs) < Duration::from_secs(60));
    }
    eprintln!("{}", table.join("\n"));
    assert!(failures.is_empty(), "{failures:#?}\n{}", table.join("\n"));
}
