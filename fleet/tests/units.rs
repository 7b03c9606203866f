//! The fleet's systemd units (fleet/systemd/) as systemd 257 reads them:
//! `systemd-analyze verify` in the trixie oracle rootfs (tools/oracle),
//! with each `/usr/bin/` program replaced by a stub so the check is about
//! the units. A misspelt key must be reported, so the check has teeth.
//! Without the rootfs the test skips loudly, and fails under CI=true.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn rootfs_built(test: &str) -> bool {
    let ok = Command::new(repo().join("tools/oracle-rootfs.sh"))
        .arg("--check")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let msg = format!("{test}: the oracle rootfs is not built (tools/test builds it)");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{msg}. Under CI=true the unit check never skips."
        );
        eprintln!("SKIPPED {msg}. Under CI=true this test fails instead.");
    }
    ok
}

/// `systemd-analyze verify` of `units` (name, text): (success, stderr).
fn verify(units: &[(&str, String)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    for b in ["windlass-fleetd", "windlass-coordinator"] {
        let p = dir.path().join("bin").join(b);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let mut names = Vec::new();
    for (name, text) in units {
        std::fs::write(dir.path().join(name), text.replace("/usr/bin/", "/w/bin/")).unwrap();
        names.push(format!("/w/{name}"));
    }
    let out = Command::new(repo().join("tools/oracle"))
        .arg("--bind")
        .arg(format!("{}:/w", dir.path().display()))
        .args([
            "env",
            "SYSTEMD_UNIT_PATH=/w:",
            "systemd-analyze",
            "verify",
            "--recursive-errors=no",
        ])
        .args(&names)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn unit(name: &str) -> (&str, String) {
    let text = std::fs::read_to_string(repo().join("fleet/systemd").join(name)).unwrap();
    (name, text)
}

#[test]
fn fleetd_and_coordinator_units_verify_with_systemd() {
    if !rootfs_built("fleetd_and_coordinator_units_verify_with_systemd") {
        return;
    }
    let units = [
        unit("windlass-fleetd.service"),
        unit("windlass-coordinator.service"),
    ];
    let (ok, err) = verify(&units);
    assert!(
        ok && err.trim().is_empty(),
        "systemd-analyze verify:\n{err}"
    );
    // Teeth: a misspelt key in either unit is reported.
    for (name, text) in &units {
        let bad = text.replacen("\nRestart=", "\nRestartt=", 1);
        assert_ne!(&bad, text, "{name} has a Restart= line");
        let (ok, err) = verify(&[(name, bad)]);
        assert!(
            !ok && err.contains("Unknown key 'Restartt'"),
            "{name}: {err}"
        );
    }
}

/// fleetd calls windlassd's mutating methods as a member of the group
/// windlassd's bus policy names, and its unit says which user it is.
#[test]
fn fleetd_runs_in_the_group_windlassd_lets_in() {
    let (_, text) = unit("windlass-fleetd.service");
    let policy =
        std::fs::read_to_string(repo().join("agent/dbus/io.windlass.Agent1.conf")).unwrap();
    let group = text
        .lines()
        .find_map(|l| l.strip_prefix("SupplementaryGroups="))
        .expect("fleetd's unit names its group");
    assert!(
        policy.contains(&format!("<policy group=\"{group}\">")),
        "windlassd's bus policy has no rule for group {group}"
    );
    let windlassd =
        std::fs::read_to_string(repo().join("agent/systemd/windlassd.service")).unwrap();
    assert!(
        windlassd.contains(&format!("--group {group}")),
        "windlassd is not run with --group {group}"
    );
}
