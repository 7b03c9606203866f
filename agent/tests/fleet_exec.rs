//! `windlassctl fleet ARGS…` runs `windlass-fleet ARGS…`: the one beside
//! windlassctl first, else the one in PATH, else a clear error. A stub
//! windlass-fleet (a shell script) stands in for the real one; no bus is
//! needed, windlassctl does not connect for `fleet`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn stub(dir: &Path, tag: &str) {
    let p = dir.join("windlass-fleet");
    std::fs::write(&p, format!("#!/bin/sh\necho \"{tag} $*\"\nexit 7\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A copy of windlassctl alone in `dir` (so the build directory's real
/// windlass-fleet, if any, is not beside it).
fn ctl_in(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("windlassctl");
    std::fs::copy(common::windlassctl_bin(), &p).unwrap();
    p
}

fn run(ctl: &Path, path: &Path, args: &[&str]) -> Output {
    Command::new(ctl)
        .args(args)
        .env("PATH", path)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn windlassctl_fleet_runs_windlass_fleet_beside_it_then_from_path() {
    let beside = tempfile::tempdir().unwrap();
    let on_path = tempfile::tempdir().unwrap();
    let ctl = ctl_in(beside.path());
    stub(on_path.path(), "path");

    // Only in PATH: that one, with the arguments as given (--help is
    // windlass-fleet's, not windlassctl's).
    let o = run(&ctl, on_path.path(), &["fleet", "--help"]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "path --help\n");
    let o = run(
        &ctl,
        on_path.path(),
        &["--json", "fleet", "rollout", "show", "web-1", "--follow"],
    );
    assert_eq!(text(&o.stdout), "path --json rollout show web-1 --follow\n");

    // Beside windlassctl wins over PATH.
    stub(beside.path(), "beside");
    let o = run(&ctl, on_path.path(), &["fleet", "--help"]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "beside --help\n");
}

#[test]
fn windlassctl_fleet_without_windlass_fleet_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let ctl = ctl_in(dir.path());
    let o = run(&ctl, empty.path(), &["fleet", "hosts"]);
    assert_eq!(o.status.code(), Some(1));
    let e = text(&o.stderr);
    assert!(e.contains("windlass-fleet"), "{e}");
    assert!(e.contains("PATH"), "{e}");
}
