//! `windlassd --run-as USER -- COMMAND…`: runs a command as another user
//! (its uid, its primary group, no supplementary groups, its `HOME`,
//! `USER`, `LOGNAME` and, when it exists, `XDG_RUNTIME_DIR=/run/user/UID`).
//! Lifecycle hooks run so on Guix System, where the containers belong to
//! the `oci-container` user's rootless Podman: a hook run by root's
//! Podman would see none of the app's volumes or networks (and create
//! empty ones of the same names).

use std::ffi::{CStr, CString};
use std::os::unix::process::CommandExt;

/// A user's account, as the password database has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// Looks `name` up in the password database.
pub fn account(name: &str) -> Result<Account, String> {
    let c = CString::new(name).map_err(|_| format!("{name:?} is not a user name"))?;
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwnam_r writes into `pw` and `buf`, both ours and alive
    // for the call; `found` is null or points at `pw`.
    let rc =
        unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() {
        return Err(format!("no user {name:?} on this host"));
    }
    // SAFETY: pw_dir points into `buf`, NUL-terminated, set by getpwnam_r.
    let home = unsafe { CStr::from_ptr(pw.pw_dir) }
        .to_string_lossy()
        .to_string();
    Ok(Account {
        name: name.to_string(),
        uid: pw.pw_uid,
        gid: pw.pw_gid,
        home,
    })
}

/// Replaces this process with `argv` run as `user`; returns only why
/// that could not be done.
pub fn exec_as(user: &str, argv: &[String]) -> String {
    let Some((first, rest)) = argv.split_first() else {
        return "--run-as: no command given".into();
    };
    let a = match account(user) {
        Ok(a) => a,
        Err(e) => return format!("--run-as: {e}"),
    };
    let mut cmd = std::process::Command::new(first);
    cmd.args(rest)
        .uid(a.uid)
        .gid(a.gid)
        .env("HOME", &a.home)
        .env("USER", &a.name)
        .env("LOGNAME", &a.name)
        .env_remove("XDG_RUNTIME_DIR");
    let runtime = format!("/run/user/{}", a.uid);
    if std::path::Path::new(&runtime).is_dir() {
        cmd.env("XDG_RUNTIME_DIR", runtime);
    }
    let e = cmd.exec();
    format!("--run-as {user}: cannot run {first}: {e}")
}

/// `argv` as `windlassd` (at `exe`) runs it as `user`.
pub fn wrap(exe: &str, user: &str, argv: &[String]) -> Vec<String> {
    let mut v = vec![
        exe.to_string(),
        "--run-as".into(),
        user.to_string(),
        "--".into(),
    ];
    v.extend(argv.iter().cloned());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_unknown_users() {
        let root = account("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(
            account("no-such-user-windlass")
                .unwrap_err()
                .contains("no user")
        );
        assert!(account("a\0b").is_err());
        assert_eq!(
            wrap(
                "/usr/bin/windlassd",
                "oci-container",
                &["podman".into(), "run".into()]
            ),
            [
                "/usr/bin/windlassd",
                "--run-as",
                "oci-container",
                "--",
                "podman",
                "run"
            ]
        );
    }
}
