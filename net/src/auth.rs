//! Registry credentials read the way Podman reads them
//! (containers-auth.json(5)), so a host where `podman login` works needs
//! nothing more for windlass's sweeps.
//!
//! Files, first match wins:
//!
//! 1. `$REGISTRY_AUTH_FILE` when it is set: that file only, as Podman
//!    treats an explicit auth file;
//! 2. otherwise Podman's primary file, `$XDG_RUNTIME_DIR/containers/auth.json`
//!    (for a system service without `XDG_RUNTIME_DIR`,
//!    `/run/containers/<uid>/auth.json`, where `sudo podman login` writes);
//! 3. `$XDG_CONFIG_HOME/containers/auth.json` (`~/.config/containers/auth.json`);
//! 4. `~/.docker/config.json`, then the legacy `~/.dockercfg`;
//! 5. `/etc/containers/auth.json`, windlass's own addition: the primary
//!    file lives under `/run` and is gone after a reboot, so a persistent
//!    system-wide file is where an operator puts the agent's credentials
//!    (the same path is commonly passed to Podman as `REGISTRY_AUTH_FILE`).
//!
//! Within a file, an entry's key is a registry host (`registry.example:5000`)
//! or a namespace below it (`registry.example/team`, `registry.example/team/app`);
//! the most specific key that contains the image's repository wins, as in
//! containers/image. Keys written as URLs (`https://host/v1/`, old Docker
//! files) count as their host. Only `auth` (base64 of `user:password`) is
//! used; an entry carrying an `identitytoken` or a file naming credential
//! helpers (`credHelpers`, `credsStore`) is not run: such a registry gets a
//! clear error when it asks for credentials, naming the file.
//!
//! Nothing here ever formats a password: `Credential`'s `Debug` hides it and
//! errors name the file and the entry, never a value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use crate::registry::ImageName;

/// A user name and password for one registry or namespace.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: String,
    /// The file and entry it came from, for messages.
    pub source: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .field("source", &self.source)
            .finish()
    }
}

impl Credential {
    /// The value of an `Authorization: Basic …` header.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// Why a file could not be used. Never carries a secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthFileError {
    #[error("{path}: {message}")]
    Read { path: String, message: String },
    #[error("{path}: line {line}, column {column}: {message}")]
    Parse {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: entry {key:?}: {message}")]
    Entry {
        path: String,
        key: String,
        message: String,
    },
}

/// What one entry holds, as far as windlass can use it.
#[derive(Debug, Clone)]
enum Entry {
    Basic(Credential),
    /// An entry windlass cannot use (an identity token, no `auth`).
    Unusable(String),
}

/// Every credential found, in search order.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// Files searched, in order (present or not), for messages.
    searched: Vec<PathBuf>,
    /// (file, normalised key, entry), file order kept.
    entries: Vec<(usize, String, Entry)>,
    /// Files that name credential helpers windlass does not run.
    helpers: Vec<String>,
    /// Files that could not be read or parsed (skipped; named in
    /// messages and by [`Credentials::problems`]).
    problems: Vec<AuthFileError>,
}

#[derive(Deserialize)]
struct AuthJson {
    #[serde(default)]
    auths: Option<BTreeMap<String, AuthEntry>>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: Option<BTreeMap<String, String>>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// What the environment says about where files are (a struct so tests can
/// give their own).
#[derive(Debug, Clone, Default)]
pub struct AuthEnv {
    pub registry_auth_file: Option<PathBuf>,
    pub xdg_runtime_dir: Option<PathBuf>,
    pub xdg_config_home: Option<PathBuf>,
    pub home: Option<PathBuf>,
    pub uid: u32,
}

impl AuthEnv {
    /// This process's environment.
    pub fn current() -> AuthEnv {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        AuthEnv {
            registry_auth_file: var("REGISTRY_AUTH_FILE"),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR"),
            xdg_config_home: var("XDG_CONFIG_HOME"),
            home: var("HOME"),
            uid: current_uid(),
        }
    }

    /// The files searched, in order.
    pub fn files(&self) -> Vec<PathBuf> {
        if let Some(f) = &self.registry_auth_file {
            return vec![f.clone()];
        }
        let mut v = Vec::new();
        match &self.xdg_runtime_dir {
            Some(d) => v.push(d.join("containers/auth.json")),
            None => v.push(PathBuf::from(format!(
                "/run/containers/{}/auth.json",
                self.uid
            ))),
        }
        match (&self.xdg_config_home, &self.home) {
            (Some(c), _) => v.push(c.join("containers/auth.json")),
            (None, Some(h)) => v.push(h.join(".config/containers/auth.json")),
            (None, None) => {}
        }
        if let Some(h) = &self.home {
            v.push(h.join(".docker/config.json"));
            v.push(h.join(".dockercfg"));
        }
        v.push(PathBuf::from("/etc/containers/auth.json"));
        v
    }
}

fn current_uid() -> u32 {
    // /proc/self is always there on Linux; the owner of /proc/self is
    // the real uid. No libc dependency for one number.
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
}

/// `https://host/v1/` → `host`; `host/ns` unchanged.
fn normalise_key(key: &str) -> String {
    let k = key.trim();
    for scheme in ["https://", "http://"] {
        if let Some(rest) = k.strip_prefix(scheme) {
            // A URL key names a host (old Docker files: `https://index.docker.io/v1/`).
            let host = rest.split('/').next().unwrap_or(rest);
            return docker_io(host).to_string();
        }
    }
    let k = k.trim_end_matches('/');
    match k.split_once('/') {
        Some((host, ns)) => format!("{}/{ns}", docker_io(host)),
        None => docker_io(k).to_string(),
    }
}

fn docker_io(host: &str) -> &str {
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        h => h,
    }
}

fn decode_auth(path: &Path, key: &str, auth: &str) -> Result<(String, String), AuthFileError> {
    let entry_err = |message: &str| AuthFileError::Entry {
        path: path.display().to_string(),
        key: key.to_string(),
        message: message.to_string(),
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|_| entry_err("\"auth\" is not base64"))?;
    let text = String::from_utf8(raw).map_err(|_| entry_err("\"auth\" is not UTF-8"))?;
    let (user, pass) = text
        .split_once(':')
        .ok_or_else(|| entry_err("\"auth\" is not base64 of user:password"))?;
    Ok((user.to_string(), pass.to_string()))
}

impl Credentials {
    /// Credentials from the files this process's environment names.
    pub fn from_env() -> Credentials {
        Credentials::from_files(&AuthEnv::current().files())
    }

    /// Credentials from `files`, in order. A missing file is skipped; an
    /// unreadable or malformed one is skipped too and kept as a problem:
    /// a broken `~/.docker/config.json` must not keep the registry named
    /// in a good primary file from working, and a registry that then
    /// finds no credentials names the broken file in its error.
    pub fn from_files(files: &[PathBuf]) -> Credentials {
        let mut c = Credentials {
            searched: files.to_vec(),
            ..Default::default()
        };
        for (i, path) in files.iter().enumerate() {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    c.problems.push(AuthFileError::Read {
                        path: path.display().to_string(),
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            // A file counts whole or not at all.
            let mut one = Credentials::default();
            match one.add_file(i, path, &text) {
                Ok(()) => {
                    c.entries.append(&mut one.entries);
                    c.helpers.append(&mut one.helpers);
                }
                Err(e) => c.problems.push(e),
            }
        }
        c
    }

    /// The files that could not be used, and why (never a value).
    pub fn problems(&self) -> &[AuthFileError] {
        &self.problems
    }

    fn add_file(&mut self, i: usize, path: &Path, text: &str) -> Result<(), AuthFileError> {
        let parse_err = |e: serde_json::Error| AuthFileError::Parse {
            path: path.display().to_string(),
            line: e.line(),
            column: e.column(),
            // serde_json's messages name types and keys, not values.
            message: e.to_string().split(" at line ").next().unwrap_or("").into(),
        };
        let legacy = path.file_name().is_some_and(|n| n == ".dockercfg");
        let (auths, helpers) = if legacy {
            let m: BTreeMap<String, AuthEntry> = serde_json::from_str(text).map_err(parse_err)?;
            (m, false)
        } else {
            let f: AuthJson = serde_json::from_str(text).map_err(parse_err)?;
            let helpers = f.creds_store.is_some_and(|s| !s.is_empty())
                || f.cred_helpers.is_some_and(|h| !h.is_empty());
            (f.auths.unwrap_or_default(), helpers)
        };
        if helpers {
            self.helpers.push(path.display().to_string());
        }
        for (key, e) in auths {
            let entry = match (&e.auth, &e.identitytoken) {
                (_, Some(t)) if !t.is_empty() => Entry::Unusable(format!(
                    "{} entry {key:?} holds an identity token, which windlass does not use (log in with a password)",
                    path.display()
                )),
                (Some(a), _) if !a.is_empty() => {
                    let (username, password) = decode_auth(path, &key, a)?;
                    Entry::Basic(Credential {
                        username,
                        password,
                        source: format!("{} entry {key:?}", path.display()),
                    })
                }
                _ => Entry::Unusable(format!(
                    "{} entry {key:?} has no \"auth\" (a credential helper's entry?)",
                    path.display()
                )),
            };
            self.entries.push((i, normalise_key(&key), entry));
        }
        Ok(())
    }

    /// The credential for `image`: in the first file that has an entry for
    /// it, the most specific entry. `Err` explains an entry windlass
    /// cannot use.
    pub fn lookup(&self, image: &ImageName) -> Result<Option<&Credential>, String> {
        let host = docker_io(&image.host);
        let full = format!("{host}/{}", image.repository);
        // A key matches the host, the repository, or a namespace of
        // whole path components above it.
        let matches = |k: &str| {
            k == host || k == full || (full.starts_with(k) && full[k.len()..].starts_with('/'))
        };
        let mut best: Option<(usize, usize, &Entry)> = None;
        for (file, key, entry) in &self.entries {
            if !matches(key) {
                continue;
            }
            let better = match best {
                None => true,
                Some((bf, blen, _)) => *file < bf || (*file == bf && key.len() > blen),
            };
            if better {
                best = Some((*file, key.len(), entry));
            }
        }
        match best {
            Some((_, _, Entry::Basic(c))) => Ok(Some(c)),
            Some((_, _, Entry::Unusable(why))) => Err(why.clone()),
            None => Ok(None),
        }
    }

    /// Where credentials were looked for, for a "none found" message.
    pub fn describe_search(&self) -> String {
        let files: Vec<String> = self
            .searched
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let mut s = format!("searched {}", files.join(", "));
        for p in &self.problems {
            s += &format!("; skipped {p}");
        }
        if !self.helpers.is_empty() {
            s += &format!(
                "; credential helpers named in {} are not run by windlass",
                self.helpers.join(", ")
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn img(s: &str) -> ImageName {
        ImageName::parse(s).unwrap()
    }

    fn creds(files: &[(&str, String)]) -> (tempfile::TempDir, Credentials) {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
            paths.push(p);
        }
        paths.push(dir.path().join("absent.json"));
        let c = Credentials::from_files(&paths);
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        (dir, c)
    }

    #[test]
    fn the_most_specific_entry_of_the_first_file_wins() {
        let first = format!(
            r#"{{"auths": {{"reg.example:5000": {{"auth": "{}"}},
                          "reg.example:5000/team": {{"auth": "{}"}},
                          "reg.example:5000/team/app": {{"auth": "{}"}}}}}}"#,
            b64("host:h"),
            b64("team:t"),
            b64("app:a:with:colons")
        );
        let second = format!(
            r#"{{"auths": {{"other.example": {{"auth": "{}"}},
                          "reg.example:5000/team/app": {{"auth": "{}"}}}}}}"#,
            b64("other:o"),
            b64("late:l")
        );
        let (_d, c) = creds(&[("a/auth.json", first), ("b/config.json", second)]);
        let user = |i: &str| c.lookup(&img(i)).unwrap().map(|c| c.username.clone());
        assert_eq!(user("reg.example:5000/team/app:1"), Some("app".into()));
        assert_eq!(
            c.lookup(&img("reg.example:5000/team/app:1"))
                .unwrap()
                .unwrap()
                .password,
            "a:with:colons"
        );
        assert_eq!(user("reg.example:5000/team/other:1"), Some("team".into()));
        // A namespace matches whole path components only.
        assert_eq!(user("reg.example:5000/teamster/x:1"), Some("host".into()));
        assert_eq!(user("reg.example:5000/x:1"), Some("host".into()));
        assert_eq!(user("other.example/x/y:1"), Some("other".into()));
        assert_eq!(user("third.example/x:1"), None);
        // The port is part of the host.
        assert_eq!(user("reg.example/team/app:1"), None);
    }

    #[test]
    fn url_keys_and_docker_hub_aliases_and_the_legacy_file() {
        let docker = format!(
            r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{}"}}}}}}"#,
            b64("hub:h")
        );
        let legacy = format!(
            r#"{{"https://legacy.example": {{"auth": "{}", "email": "x@y"}}}}"#,
            b64("old:o")
        );
        let (_d, c) = creds(&[("h/.docker/config.json", docker), ("h/.dockercfg", legacy)]);
        let user = |i: &str| c.lookup(&img(i)).unwrap().map(|c| c.username.clone());
        assert_eq!(user("docker.io/library/nginx:1"), Some("hub".into()));
        assert_eq!(user("legacy.example/a:1"), Some("old".into()));
    }

    #[test]
    fn helpers_and_identity_tokens_are_named_never_used() {
        let f = format!(
            r#"{{"credsStore": "pass", "auths": {{"tok.example": {{"identitytoken": "SECRET-TOKEN"}},
               "helper.example": {{}}, "ok.example": {{"auth": "{}"}}}}}}"#,
            b64("u:SECRET-PASS")
        );
        let (_d, c) = creds(&[("auth.json", f)]);
        let e = c.lookup(&img("tok.example/a:1")).unwrap_err();
        assert!(e.contains("identity token") && !e.contains("SECRET"), "{e}");
        let e = c.lookup(&img("helper.example/a:1")).unwrap_err();
        assert!(e.contains("no \"auth\""), "{e}");
        assert!(c.describe_search().contains("credential helpers"));
        let ok = c.lookup(&img("ok.example/a:1")).unwrap().unwrap();
        let dbg = format!("{ok:?}");
        assert!(!dbg.contains("SECRET-PASS"), "{dbg}");
        assert_eq!(ok.basic_header(), format!("Basic {}", b64("u:SECRET-PASS")));
    }

    #[test]
    fn a_bad_file_is_named_with_its_position_and_no_value_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("auth.json");
        let good = dir.path().join("config.json");
        std::fs::write(
            &good,
            format!(
                r#"{{"auths": {{"r.example": {{"auth": "{}"}}}}}}"#,
                b64("ok:pw")
            ),
        )
        .unwrap();
        let files = [p.clone(), good];
        std::fs::write(&p, "{\"auths\": {\"r.example\": {\"auth\": \"SECRET\"\n").unwrap();
        let c = Credentials::from_files(&files);
        let e = c.problems()[0].to_string();
        assert!(e.starts_with(&p.display().to_string()), "{e}");
        assert!(e.contains("line 2"), "{e}");
        assert!(!e.contains("SECRET"), "{e}");
        // The next file still serves, and a search names the skipped one.
        let found = c.lookup(&img("r.example/a:1")).unwrap().unwrap();
        assert_eq!(found.username, "ok");
        assert!(
            c.describe_search().contains("skipped"),
            "{}",
            c.describe_search()
        );
        // base64 of "no-colon-SECRET": no user:password in it.
        std::fs::write(
            &p,
            r#"{"auths": {"r.example": {"auth": "bm8tY29sb24tU0VDUkVU"}}}"#,
        )
        .unwrap();
        let c = Credentials::from_files(&files);
        let e = c.problems()[0].to_string();
        assert!(e.contains("user:password") && !e.contains("SECRET"), "{e}");
    }

    #[test]
    fn podmans_search_order() {
        let env = AuthEnv {
            registry_auth_file: None,
            xdg_runtime_dir: None,
            xdg_config_home: None,
            home: Some("/root".into()),
            uid: 0,
        };
        let f: Vec<String> = env
            .files()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            f,
            [
                "/run/containers/0/auth.json",
                "/root/.config/containers/auth.json",
                "/root/.docker/config.json",
                "/root/.dockercfg",
                "/etc/containers/auth.json"
            ]
        );
        let env = AuthEnv {
            xdg_runtime_dir: Some("/run/user/1000".into()),
            xdg_config_home: Some("/cfg".into()),
            uid: 1000,
            ..env
        };
        assert_eq!(
            env.files()[..2],
            [
                PathBuf::from("/run/user/1000/containers/auth.json"),
                PathBuf::from("/cfg/containers/auth.json")
            ]
        );
        let env = AuthEnv {
            registry_auth_file: Some("/etc/windlass/auth.json".into()),
            ..env
        };
        assert_eq!(env.files(), [PathBuf::from("/etc/windlass/auth.json")]);
    }
}
