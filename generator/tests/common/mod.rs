//! Shared helpers for tests that run the real consumers of our output
//! (quadlet, systemd-analyze, nix-instantiate, guile) inside the trixie
//! oracle rootfs built by `tools/oracle-rootfs.sh`.
//!
//! No silent skips: when the oracle cannot be had and `CI=true`, the test
//! fails. Outside CI it fails too unless `WINDLASS_SKIP_ORACLES=1` is set,
//! in which case it says so loudly.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Returns false only when oracles are explicitly disabled outside CI.
pub fn oracles_enabled(test: &str) -> bool {
    let ci = std::env::var("CI").map(|v| v == "true").unwrap_or(false);
    if !ci && std::env::var("WINDLASS_SKIP_ORACLES").as_deref() == Ok("1") {
        eprintln!(
            "WARNING: {test}: oracle disabled by WINDLASS_SKIP_ORACLES=1 (never under CI=true)"
        );
        return false;
    }
    true
}

/// Runs `cmd` inside the oracle rootfs with `binds` (host dir, guest dir)
/// bind-mounted. Panics when the oracle itself cannot be started.
pub fn oracle(binds: &[(&Path, &str)], cmd: &[&str]) -> Output {
    let mut c = Command::new(repo_root().join("tools/oracle"));
    for (host, guest) in binds {
        c.arg("--bind").arg(format!("{}:{}", host.display(), guest));
    }
    c.args(cmd);
    let out = c.output().expect("cannot start tools/oracle");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("tools/oracle: setup failed"),
        "oracle rootfs unavailable: {stderr}"
    );
    out
}
