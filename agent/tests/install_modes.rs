//! Cut-over versions are installed as a package manager installs them:
//! the version directory and the binary 0755 (and the directories above
//! them in the artifacts tree), whatever the agent's umask — the link is
//! the path users and units run. The real windlassd, under the shipped
//! unit's UMask=0077, cuts over over HTTPS (nginx, test CA); an
//! unprivileged user then runs the link.

mod common;
mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use support::*;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn versions_are_installed_world_readable_and_executable_whatever_the_umask() {
    // SAFETY: umask of this test's own process (one per test); windlassd
    // inherits it, as it gets UMask=0077 from its unit.
    unsafe { libc::umask(0o077) };
    let f = fixture("");
    let (state, run) = (f.tmp.path().join("state"), f.tmp.path().join("run"));
    let v2 = script("tool-2", PASSES);
    std::fs::write(f.www.join("tool-2"), &v2).unwrap();
    // A plain file at the link, adopted on first use.
    std::fs::write(&f.link, script("tool-1", PASSES)).unwrap();
    std::fs::set_permissions(&f.link, std::fs::Permissions::from_mode(0o700)).unwrap();
    let a = windlassd_for_cutover(&f.bus, &state, &run, &f.targets, &f.ca, &[]);
    let url = format!("https://127.0.0.1:{}/tool-2", f.nginx.port);
    let out = a.ctl(&["cutover", "tool", "2", &url, &sha256(&v2)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        common::stdout(&out),
        common::stderr(&out)
    );

    let artifacts = state.join("artifacts");
    let adopted = std::fs::read_dir(artifacts.join("tool"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("adopted-")
        })
        .expect("the plain file was adopted");
    for p in [
        artifacts.clone(),
        artifacts.join("tool"),
        artifacts.join("tool/2"),
        artifacts.join("tool/2/tool"),
        adopted.clone(),
        adopted.join("tool"),
    ] {
        assert_eq!(mode(&p), 0o755, "{}", p.display());
    }

    // With the state directory made traversable (docs/agent.md), anyone
    // runs the link.
    for d in [f.tmp.path(), &state, f.link.parent().unwrap()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&f.link)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(common::stdout(&out).trim(), "tool-2");
}
