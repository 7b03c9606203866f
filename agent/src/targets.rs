//! Cutover targets: the binaries the agent may move to a new version,
//! one TOML file each under the targets directory (default
//! `/etc/windlass/targets/<name>.toml`, written by the NixOS and Guix
//! modules or by hand). A target names its link, the unit that runs it,
//! how to tell it is healthy, and how many versions to keep. Read on every
//! Cutover call, so an edit needs no restart; never written by the agent.
//!
//! ```toml
//! link = "/usr/local/bin/fleet-agent"   # the path users and units run
//! unit = "fleet-agent.service"          # restarted after the swap (optional)
//! health_http = "http://127.0.0.1:9100/healthz"  # must answer 2xx (optional)
//! deadline = 60          # seconds to become active and healthy
//! keep = 3               # versions kept on disk (at least 2)
//! max_bytes = 268435456  # download size cap
//! self_test_timeout = 30 # seconds `<new> --self-test` may take
//! agent = false          # true: this target is windlassd itself
//! allow_http = false     # tests on loopback only
//! ```

use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item};

use crate::record::MAX_DEADLINE_SEC;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    /// The path that is swapped (a symlink once the target is adopted).
    pub link: PathBuf,
    /// The file name of the binary inside a version directory.
    pub binary: String,
    pub unit: Option<String>,
    pub health_http: Option<String>,
    pub deadline_sec: u64,
    pub keep: usize,
    pub max_bytes: u64,
    pub self_test_timeout_sec: u64,
    /// The target is the agent itself (self-upgrade).
    pub agent: bool,
    pub allow_http: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("no cutover target {name:?} (no {path})")]
    NotFound { name: String, path: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// Names of targets and versions become path components: keep them tame.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
}

/// Reads `<dir>/<name>.toml`.
pub fn load(dir: &Path, name: &str) -> Result<Target, TargetError> {
    let path = dir.join(format!("{name}.toml"));
    let shown = path.display().to_string();
    if !valid_name(name) {
        return Err(TargetError::NotFound {
            name: name.to_string(),
            path: shown,
        });
    }
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(TargetError::NotFound {
                name: name.to_string(),
                path: shown,
            });
        }
        Err(e) => {
            return Err(TargetError::Invalid {
                path: shown,
                message: e.to_string(),
            });
        }
    };
    parse(name, &text).map_err(|message| TargetError::Invalid {
        path: shown,
        message,
    })
}

/// Parses one target file; unknown keys are refused, not ignored.
pub fn parse(name: &str, text: &str) -> Result<Target, String> {
    let doc: DocumentMut = text.parse().map_err(|e| format!("{e}"))?;
    let known = [
        "link",
        "binary",
        "unit",
        "health_http",
        "deadline",
        "keep",
        "max_bytes",
        "self_test_timeout",
        "agent",
        "allow_http",
    ];
    for (k, _) in doc.iter() {
        if !known.contains(&k) {
            return Err(format!("unknown key {k:?} (known: {})", known.join(", ")));
        }
    }
    let string = |k: &str| -> Result<Option<String>, String> {
        match doc.get(k) {
            None | Some(Item::None) => Ok(None),
            Some(i) => i
                .as_str()
                .map(|s| Some(s.to_string()))
                .ok_or_else(|| format!("{k} must be a string")),
        }
    };
    let int = |k: &str, default: u64| -> Result<u64, String> {
        match doc.get(k) {
            None | Some(Item::None) => Ok(default),
            Some(i) => i
                .as_integer()
                .filter(|n| *n >= 0)
                .map(|n| n as u64)
                .ok_or_else(|| format!("{k} must be a non-negative integer")),
        }
    };
    let seconds = |k: &str, default: u64| -> Result<u64, String> {
        let d = int(k, default)?.max(1);
        if d > MAX_DEADLINE_SEC {
            return Err(format!("{k} = {d}: at most {MAX_DEADLINE_SEC} s (a week)"));
        }
        Ok(d)
    };
    let boolean = |k: &str| -> Result<bool, String> {
        match doc.get(k) {
            None | Some(Item::None) => Ok(false),
            Some(i) => i
                .as_bool()
                .ok_or_else(|| format!("{k} must be true or false")),
        }
    };
    let link = PathBuf::from(string("link")?.ok_or("link is required")?);
    if !link.is_absolute() || link.file_name().is_none() {
        return Err(format!(
            "link {} must be an absolute file path",
            link.display()
        ));
    }
    let binary = match string("binary")? {
        Some(b) => b,
        None => link
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
    };
    if !valid_name(&binary) {
        return Err(format!("binary {binary:?} is not a plain file name"));
    }
    let keep = int("keep", 3)?;
    if keep < 2 {
        return Err(format!(
            "keep = {keep}: at least 2 versions are kept (the running one and the previous)"
        ));
    }
    let health_http = string("health_http")?;
    if let Some(h) = &health_http
        && !(h.starts_with("http://") || h.starts_with("https://"))
    {
        return Err(format!("health_http {h:?} must be an http(s) URL"));
    }
    let unit = string("unit")?.filter(|u| !u.is_empty());
    let agent = boolean("agent")?;
    if agent && unit.is_none() {
        return Err("agent = true needs the agent's unit (unit = \"windlassd.service\")".into());
    }
    Ok(Target {
        name: name.to_string(),
        link,
        binary,
        unit,
        health_http,
        deadline_sec: seconds("deadline", 60)?,
        keep: keep as usize,
        max_bytes: int("max_bytes", 256 << 20)?,
        self_test_timeout_sec: seconds("self_test_timeout", 30)?,
        agent,
        allow_http: boolean("allow_http")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_file_reads_with_defaults() {
        let t = parse(
            "fleet-agent",
            "link = \"/usr/local/bin/fleet-agent\"\nunit = \"fleet-agent.service\"\n",
        )
        .unwrap();
        assert_eq!(t.binary, "fleet-agent");
        assert_eq!(t.keep, 3);
        assert_eq!(t.deadline_sec, 60);
        assert!(!t.allow_http && !t.agent);
    }

    #[test]
    fn bad_target_files_are_refused_with_the_reason() {
        for (text, why) in [
            ("link = \"/x\"\nkeep = 1\n", "at least 2"),
            ("link = \"relative\"\n", "absolute"),
            ("unit = \"x.service\"\n", "link is required"),
            ("link = \"/x\"\nlnk = 1\n", "unknown key \"lnk\""),
            ("link = \"/x\"\nagent = true\n", "needs the agent's unit"),
            ("link = \"/x\"\nhealth_http = \"ftp://x\"\n", "http(s) URL"),
            (
                "link = \"/x\"\ndeadline = 604801\n",
                "deadline = 604801: at most 604800 s",
            ),
            (
                "link = \"/x\"\nself_test_timeout = 9223372036854775807\n",
                "self_test_timeout = 9223372036854775807: at most",
            ),
        ] {
            let e = parse("t", text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn names_that_could_escape_a_directory_are_not_valid() {
        for bad in ["", ".", "..", "a/b", ".hidden", "a b"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        for good in ["1.2.3", "v2_rc-1", "1.0.0+build.5"] {
            assert!(valid_name(good), "{good:?}");
        }
    }
}
