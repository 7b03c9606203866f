//! A rollout file (TOML) → [`RolloutSpec`]. Every problem is reported
//! with file:line:column and what was expected, like the generator's
//! manifest errors; all problems of a file are reported at once. Pure:
//! the caller reads the file.
//!
//! ```toml
//! id = "web-142"
//!
//! [target.generation]
//! native = { digest = "sha256:…", artifact = "sha256-…", artifact_sha256 = "…", size = 81234 }
//! # or: system = "/nix/store/…-nixos-system-…"
//! # or [target.sweep] app = "web", release = "1.4.2"
//! # or [target.cutover] target = "agent", version, url, sha256
//!
//! [[wave]]
//! name = "canary"
//! hosts = ["kiosk-01"]       # or labels = { site = "north" }, or rest = true (last wave only)
//!
//! [policy]                   # every key optional
//! max_unavailable = 0
//! max_failed = 0
//! soak = "5m"                # "30s", "5m", "1h" or whole seconds
//! wave_deadline = "30m"
//! health_deadline = "2m"
//! heartbeat_interval = "30s" # the hosts' heartbeat interval
//! on_fail = "pause"          # or "rollback"
//! confirm = "observed"       # or "local"
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml_edit::{Document, Item, TableLike, Value};

use crate::model::{ConfirmMode, HostId, NativeTarget, OnFail, RolloutId, Target, check_id};

/// A validated rollout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutSpec {
    pub id: RolloutId,
    pub target: TargetSpec,
    pub waves: Vec<WaveSpec>,
    pub policy: Policy,
}

/// What the rollout moves hosts to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetSpec {
    Generation(Target),
    /// `release: None`: discovered once when the rollout starts.
    Sweep {
        app: String,
        release: Option<String>,
    },
    Cutover {
        target: String,
        version: String,
        url: String,
        sha256: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveSpec {
    pub name: String,
    pub hosts: HostSelector,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostSelector {
    Hosts(Vec<HostId>),
    Labels(BTreeMap<String, String>),
    /// Every known host in no earlier wave.
    Rest,
}

/// Durations serialize as whole seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub max_unavailable: u32,
    pub max_failed: u32,
    #[serde(with = "secs")]
    pub soak: Duration,
    #[serde(with = "secs")]
    pub wave_deadline: Duration,
    /// The agent's wait for health (and, observed, for the confirm).
    #[serde(with = "secs")]
    pub health_deadline: Duration,
    /// The hosts' heartbeat interval: a host is unavailable after three
    /// of them without a heartbeat.
    #[serde(with = "secs")]
    pub heartbeat_interval: Duration,
    pub on_fail: OnFail,
    pub confirm: ConfirmMode,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            max_unavailable: 0,
            max_failed: 0,
            soak: Duration::from_secs(300),
            wave_deadline: Duration::from_secs(1800),
            health_deadline: Duration::from_secs(120),
            heartbeat_interval: Duration::from_secs(30),
            on_fail: OnFail::Pause,
            confirm: ConfirmMode::Observed,
        }
    }
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// One problem in a rollout file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct SpecError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Dotted key, e.g. `wave[1].hosts[0]`; empty for the file.
    pub key: String,
    pub message: String,
}

/// All problems of a file, one per line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

/// Parses and validates a rollout file; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<RolloutSpec, SpecErrors> {
    let mut p = Parser {
        file,
        text,
        errors: Vec::new(),
    };
    let spec = match Document::parse(text) {
        Ok(doc) => p.spec(doc.as_table()),
        Err(e) => {
            let at = e.span().map_or(0, |r| r.start);
            let msg = e.message().trim_end().replace('\n', "; ");
            p.error(at, "", format!("invalid TOML: {msg}"));
            None
        }
    };
    match spec {
        Some(spec) if p.errors.is_empty() => Ok(spec),
        _ => Err(SpecErrors(p.errors)),
    }
}

/// Parses `"30s"`, `"5m"`, `"1h"` (whole numbers) into a duration.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = n.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return None,
    };
    n.checked_mul(mult).map(Duration::from_secs)
}

const TOP: &[&str] = &["id", "target", "wave", "policy"];
const TARGETS: &[&str] = &["generation", "sweep", "cutover"];
const GENERATION: &[&str] = &["native", "system"];
const NATIVE: &[&str] = &["digest", "artifact", "artifact_sha256", "size"];
const SWEEP: &[&str] = &["app", "release"];
const CUTOVER: &[&str] = &["target", "version", "url", "sha256"];
const WAVE: &[&str] = &["name", "hosts", "labels", "rest"];
const POLICY: &[&str] = &[
    "max_unavailable",
    "max_failed",
    "soak",
    "wave_deadline",
    "health_deadline",
    "heartbeat_interval",
    "on_fail",
    "confirm",
];

struct Parser<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<SpecError>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn found(item: &Item) -> String {
    match item {
        Item::Value(Value::String(s)) => format!("string {:?}", s.value()),
        Item::Value(Value::Integer(i)) => format!("integer {}", i.value()),
        Item::Value(Value::Float(x)) => format!("float {}", x.value()),
        Item::Value(Value::Boolean(b)) => format!("boolean {}", b.value()),
        Item::Value(Value::Datetime(_)) => "a date-time".to_string(),
        Item::Value(Value::Array(_)) => "an array".to_string(),
        Item::Value(Value::InlineTable(_)) | Item::Table(_) => "a table".to_string(),
        Item::ArrayOfTables(_) => "an array of tables".to_string(),
        Item::None => "nothing".to_string(),
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Parser<'_> {
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[start..].chars().count() + 1)
    }

    fn error(&mut self, at: usize, key: &str, message: String) {
        let (line, column) = self.line_col(at);
        let message = if key.is_empty() {
            message
        } else {
            format!("`{key}`: {message}")
        };
        self.errors.push(SpecError {
            file: self.file.to_string(),
            line,
            column,
            key: key.to_string(),
            message,
        });
    }

    fn start(r: Option<Range<usize>>, fallback: usize) -> usize {
        r.map_or(fallback, |r| r.start)
    }

    /// Reports unknown keys of `t`; returns the known ones with the
    /// offset of their value (or key).
    fn keys<'t>(
        &mut self,
        t: &'t dyn TableLike,
        allowed: &[&str],
        path: &str,
        at: usize,
    ) -> BTreeMap<&'t str, (&'t Item, usize)> {
        let mut out = BTreeMap::new();
        for (key, item) in t.iter() {
            let key_at = Self::start(t.key(key).and_then(|k| k.span()), at);
            if !allowed.contains(&key) {
                let where_ = if path.is_empty() {
                    String::new()
                } else {
                    format!(" in `{path}`")
                };
                self.error(
                    key_at,
                    "",
                    format!(
                        "unknown key `{key}`{where_}; expected one of: {}",
                        allowed.join(", ")
                    ),
                );
                continue;
            }
            out.insert(key, (item, Self::start(item.span(), key_at)));
        }
        out
    }

    fn string(&mut self, item: &Item, key: &str, at: usize) -> Option<String> {
        match item {
            Item::Value(Value::String(s)) if !s.value().is_empty() => Some(s.value().clone()),
            other => {
                self.error(
                    at,
                    key,
                    format!("expected a non-empty string, found {}", found(other)),
                );
                None
            }
        }
    }

    fn count(&mut self, item: &Item, key: &str, at: usize) -> Option<u64> {
        match item {
            Item::Value(Value::Integer(i)) if *i.value() >= 0 => Some(*i.value() as u64),
            other => {
                self.error(
                    at,
                    key,
                    format!("expected a non-negative integer, found {}", found(other)),
                );
                None
            }
        }
    }

    fn duration(&mut self, item: &Item, key: &str, at: usize) -> Option<Duration> {
        let d = match item {
            Item::Value(Value::Integer(i)) if *i.value() >= 0 => {
                Some(Duration::from_secs(*i.value() as u64))
            }
            Item::Value(Value::String(s)) => parse_duration(s.value()),
            _ => None,
        };
        if d.is_none() {
            self.error(
                at,
                key,
                format!(
                    "expected a duration like \"30s\", \"5m\", \"1h\" or whole seconds, found {}",
                    found(item)
                ),
            );
        }
        d
    }

    fn table<'t>(&mut self, item: &'t Item, key: &str, at: usize) -> Option<&'t dyn TableLike> {
        match item.as_table_like() {
            Some(t) => Some(t),
            None => {
                self.error(at, key, format!("expected a table, found {}", found(item)));
                None
            }
        }
    }

    fn required<'t>(
        &mut self,
        m: &BTreeMap<&str, (&'t Item, usize)>,
        key: &str,
        path: &str,
        at: usize,
        what: &str,
    ) -> Option<(&'t Item, usize)> {
        let r = m.get(key).copied();
        if r.is_none() {
            self.error(at, "", format!("missing `{}` ({what})", join(path, key)));
        }
        r
    }

    fn spec(&mut self, doc: &toml_edit::Table) -> Option<RolloutSpec> {
        let top = self.keys(doc, TOP, "", 0);
        let id = self
            .required(&top, "id", "", 0, "the rollout id, a string")
            .and_then(|(item, at)| {
                let id = self.string(item, "id", at)?;
                match check_id("rollout id", &id) {
                    Ok(()) => Some(id),
                    Err(e) => {
                        self.error(at, "id", e);
                        None
                    }
                }
            });
        let target = self
            .required(
                &top,
                "target",
                "",
                0,
                "a table [target.generation], [target.sweep] or [target.cutover]",
            )
            .and_then(|(item, at)| self.target(item, at));
        let waves = self.waves(top.get("wave").copied());
        let policy = match top.get("policy").copied() {
            Some((item, at)) => self.policy(item, at),
            None => Some(Policy::default()),
        };
        Some(RolloutSpec {
            id: id?,
            target: target?,
            waves: waves?,
            policy: policy?,
        })
    }

    fn target(&mut self, item: &Item, at: usize) -> Option<TargetSpec> {
        let t = self.table(item, "target", at)?;
        let m = self.keys(t, TARGETS, "target", at);
        if m.len() != 1 {
            if !m.is_empty() || t.is_empty() {
                self.error(
                    at,
                    "target",
                    format!(
                        "expected exactly one of `generation`, `sweep`, `cutover`, found {}",
                        if m.is_empty() {
                            "none".to_string()
                        } else {
                            m.keys().copied().collect::<Vec<_>>().join(" and ")
                        }
                    ),
                );
            }
            return None;
        }
        let (&kind, &(item, at)) = m.iter().next()?;
        let path = join("target", kind);
        let t = self.table(item, &path, at)?;
        match kind {
            "generation" => {
                let m = self.keys(t, GENERATION, &path, at);
                match (m.get("native").copied(), m.get("system").copied()) {
                    (Some((item, at)), None) => self.native(item, at).map(TargetSpec::Generation),
                    (None, Some((item, at))) => {
                        let key = "target.generation.system";
                        let path = self.string(item, key, at)?;
                        if !path.starts_with('/') || path.contains(char::is_whitespace) {
                            self.error(
                                at,
                                key,
                                format!(
                                    "expected an absolute store path of a system, found {path:?}"
                                ),
                            );
                            return None;
                        }
                        Some(TargetSpec::Generation(Target::System { path }))
                    }
                    _ => {
                        self.error(
                            at,
                            &path,
                            "expected exactly one of `native` and `system`".to_string(),
                        );
                        None
                    }
                }
            }
            "sweep" => {
                let m = self.keys(t, SWEEP, &path, at);
                let app = self
                    .required(&m, "app", &path, at, "the app's name, a string")
                    .and_then(|(i, a)| self.string(i, "target.sweep.app", a));
                let release = match m.get("release").copied() {
                    Some((i, a)) => Some(self.string(i, "target.sweep.release", a)?),
                    None => None,
                };
                Some(TargetSpec::Sweep { app: app?, release })
            }
            _ => {
                let m = self.keys(t, CUTOVER, &path, at);
                let get = |p: &mut Self, key: &str| {
                    p.required(&m, key, &path, at, "a string")
                        .and_then(|(i, a)| p.string(i, &join(&path, key), a))
                };
                let target = get(self, "target");
                let version = get(self, "version");
                let url = get(self, "url");
                let sha256 = get(self, "sha256");
                if let (Some(s), Some((_, a))) = (&sha256, m.get("sha256"))
                    && !is_hex(s, 64)
                {
                    self.error(
                        *a,
                        "target.cutover.sha256",
                        format!("expected 64 lowercase hex digits, found {s:?}"),
                    );
                    return None;
                }
                Some(TargetSpec::Cutover {
                    target: target?,
                    version: version?,
                    url: url?,
                    sha256: sha256?,
                })
            }
        }
    }

    fn native(&mut self, item: &Item, at: usize) -> Option<Target> {
        let path = "target.generation.native";
        let t = self.table(item, path, at)?;
        let m = self.keys(t, NATIVE, path, at);
        let s = |p: &mut Self, key: &str| {
            p.required(&m, key, path, at, "a string")
                .and_then(|(i, a)| Some((p.string(i, &join(path, key), a)?, a)))
        };
        let digest = s(self, "digest");
        let artifact = s(self, "artifact");
        let artifact_sha256 = s(self, "artifact_sha256");
        let size = self
            .required(&m, "size", path, at, "the artifact's size in bytes")
            .and_then(|(i, a)| self.count(i, "target.generation.native.size", a));
        let (digest, d_at) = digest?;
        let (artifact, a_at) = artifact?;
        let (artifact_sha256, s_at) = artifact_sha256?;
        let mut ok = true;
        if !digest
            .strip_prefix("sha256:")
            .is_some_and(|h| is_hex(h, 64))
        {
            self.error(
                d_at,
                "target.generation.native.digest",
                format!("expected \"sha256:\" and 64 lowercase hex digits, found {digest:?}"),
            );
            ok = false;
        }
        if !is_hex(&artifact_sha256, 64) {
            self.error(
                s_at,
                "target.generation.native.artifact_sha256",
                format!("expected 64 lowercase hex digits, found {artifact_sha256:?}"),
            );
            ok = false;
        } else if artifact != format!("sha256-{artifact_sha256}") {
            self.error(
                a_at,
                "target.generation.native.artifact",
                format!(
                    "expected \"sha256-{artifact_sha256}\" (the object is named by artifact_sha256), found {artifact:?}"
                ),
            );
            ok = false;
        }
        (ok && size.is_some()).then(|| {
            Target::Native(NativeTarget {
                digest,
                artifact,
                artifact_sha256,
                size: size.unwrap_or_default(),
            })
        })
    }

    fn waves(&mut self, item: Option<(&Item, usize)>) -> Option<Vec<WaveSpec>> {
        let Some((item, at)) = item else {
            self.error(
                0,
                "",
                "missing `[[wave]]`: expected at least one wave".to_string(),
            );
            return None;
        };
        let Item::ArrayOfTables(arr) = item else {
            self.error(
                at,
                "wave",
                format!(
                    "expected an array of tables ([[wave]]), found {}",
                    found(item)
                ),
            );
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        // host → (wave name, line) of its first explicit mention
        let mut explicit: BTreeMap<String, (String, usize)> = BTreeMap::new();
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        let mut rest_at: Option<(usize, String)> = None;
        for (i, t) in arr.iter().enumerate() {
            let path = format!("wave[{i}]");
            let at = Self::start(t.span(), at);
            let m = self.keys(t, WAVE, &path, at);
            if let Some((rest_at, rest_name)) = &rest_at {
                let line = self.line_col(*rest_at).0;
                self.error(
                    at,
                    &path,
                    format!("a wave after the `rest` wave `{rest_name}` (line {line}): `rest = true` must be the last wave"),
                );
                ok = false;
            }
            let name = self
                .required(&m, "name", &path, at, "a string")
                .and_then(|(item, a)| {
                    let name = self.string(item, &join(&path, "name"), a)?;
                    if let Some(prev) = names.get(&name) {
                        let line = self.line_col(*prev).0;
                        self.error(
                            a,
                            &join(&path, "name"),
                            format!("wave name {name:?} is already used (line {line}); expected a unique name"),
                        );
                        return None;
                    }
                    names.insert(name.clone(), a);
                    Some(name)
                });
            let chosen: Vec<&str> = ["hosts", "labels", "rest"]
                .into_iter()
                .filter(|k| m.contains_key(k))
                .collect();
            let hosts = match chosen.as_slice() {
                ["hosts"] => {
                    let (item, a) = m["hosts"];
                    self.hosts(item, a, &path, name.as_deref(), &mut explicit)
                }
                ["labels"] => {
                    let (item, a) = m["labels"];
                    self.labels(item, a, &path)
                }
                ["rest"] => {
                    let (item, a) = m["rest"];
                    match item {
                        Item::Value(Value::Boolean(b)) if *b.value() => {
                            rest_at = Some((at, name.clone().unwrap_or_default()));
                            Some(HostSelector::Rest)
                        }
                        other => {
                            self.error(
                                a,
                                &join(&path, "rest"),
                                format!(
                                    "expected `true` (or leave `rest` out), found {}",
                                    found(other)
                                ),
                            );
                            None
                        }
                    }
                }
                _ => {
                    self.error(
                        at,
                        &path,
                        format!(
                            "expected exactly one of `hosts`, `labels`, `rest`, found {}",
                            if chosen.is_empty() {
                                "none".to_string()
                            } else {
                                chosen.join(" and ")
                            }
                        ),
                    );
                    None
                }
            };
            match (name, hosts) {
                (Some(name), Some(hosts)) => out.push(WaveSpec { name, hosts }),
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn hosts(
        &mut self,
        item: &Item,
        at: usize,
        path: &str,
        wave: Option<&str>,
        explicit: &mut BTreeMap<String, (String, usize)>,
    ) -> Option<HostSelector> {
        let key = join(path, "hosts");
        let Some(arr) = item.as_array() else {
            self.error(
                at,
                &key,
                format!("expected an array of host ids, found {}", found(item)),
            );
            return None;
        };
        if arr.is_empty() {
            self.error(
                at,
                &key,
                "expected at least one host (an empty wave does nothing)".to_string(),
            );
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (j, v) in arr.iter().enumerate() {
            let a = Self::start(v.span(), at);
            let k = format!("{key}[{j}]");
            let Value::String(s) = v else {
                self.error(
                    a,
                    &k,
                    format!(
                        "expected a host id, found {}",
                        found(&Item::Value(v.clone()))
                    ),
                );
                ok = false;
                continue;
            };
            let host = s.value().clone();
            if let Err(e) = check_id("host id", &host) {
                self.error(a, &k, e);
                ok = false;
                continue;
            }
            if let Some((first, offset)) = explicit.get(&host) {
                let line = self.line_col(*offset).0;
                self.error(
                    a,
                    &k,
                    format!("host {host:?} is already in wave {first:?} (line {line}); a host is rolled out once"),
                );
                ok = false;
                continue;
            }
            explicit.insert(host.clone(), (wave.unwrap_or("?").to_string(), a));
            out.push(host);
        }
        ok.then_some(HostSelector::Hosts(out))
    }

    fn labels(&mut self, item: &Item, at: usize, path: &str) -> Option<HostSelector> {
        let key = join(path, "labels");
        let t = self.table(item, &key, at)?;
        if t.is_empty() {
            self.error(
                at,
                &key,
                "expected at least one label (`labels = { site = \"north\" }`)".to_string(),
            );
            return None;
        }
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (k, v) in t.iter() {
            let a = Self::start(v.span(), at);
            match v.as_str() {
                Some(s) => {
                    out.insert(k.to_string(), s.to_string());
                }
                None => {
                    self.error(
                        a,
                        &join(&key, k),
                        format!("expected a string, found {}", found(v)),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(HostSelector::Labels(out))
    }

    fn policy(&mut self, item: &Item, at: usize) -> Option<Policy> {
        let t = self.table(item, "policy", at)?;
        let m = self.keys(t, POLICY, "policy", at);
        let mut p = Policy::default();
        let mut ok = true;
        let mut deadline_at = None;
        for (&key, &(item, a)) in &m {
            let k = join("policy", key);
            let good = match key {
                "max_unavailable" | "max_failed" => match self.count(item, &k, a) {
                    Some(n) if n <= u32::MAX as u64 => {
                        if key == "max_failed" {
                            p.max_failed = n as u32;
                        } else {
                            p.max_unavailable = n as u32;
                        }
                        true
                    }
                    _ => false,
                },
                "on_fail" | "confirm" => {
                    let parsed = match item.as_str() {
                        Some(s) if key == "on_fail" => s.parse::<OnFail>().map(|v| p.on_fail = v),
                        Some(s) => s.parse::<ConfirmMode>().map(|v| p.confirm = v),
                        None => Err(format!("expected a string, found {}", found(item))),
                    };
                    parsed.map_err(|e| self.error(a, &k, e)).is_ok()
                }
                _ => match self.duration(item, &k, a) {
                    Some(d) => {
                        match key {
                            "soak" => p.soak = d,
                            "wave_deadline" => p.wave_deadline = d,
                            "health_deadline" => {
                                p.health_deadline = d;
                                deadline_at = Some(a);
                            }
                            _ => p.heartbeat_interval = d,
                        }
                        let zero_ok = key == "soak";
                        if d.is_zero() && !zero_ok {
                            self.error(a, &k, "expected a duration above zero".to_string());
                            false
                        } else {
                            true
                        }
                    }
                    None => false,
                },
            };
            ok &= good;
        }
        if ok && p.health_deadline > p.wave_deadline {
            self.error(
                deadline_at.unwrap_or(at),
                "policy.health_deadline",
                format!(
                    "expected at most wave_deadline ({} s), found {} s: a host could still wait for its confirm when the wave ends",
                    p.wave_deadline.as_secs(),
                    p.health_deadline.as_secs()
                ),
            );
            ok = false;
        }
        ok.then_some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f";
    const A: &str = "4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c";

    fn native() -> String {
        format!(
            "[target.generation]\nnative = {{ digest = \"sha256:{D}\", artifact = \"sha256-{A}\", artifact_sha256 = \"{A}\", size = 81234 }}\n"
        )
    }

    /// The one error of `text` (after a valid id and target), as
    /// `line:column: message`.
    fn err(text: &str) -> String {
        let e = parse("r.toml", text).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        let e = &e.0[0];
        assert_eq!(e.file, "r.toml");
        format!("{}:{}: {}", e.line, e.column, e.message)
    }

    fn with_waves(waves: &str) -> String {
        format!("id = \"web-142\"\n{}{waves}", native())
    }

    #[test]
    fn a_full_rollout_file_parses() {
        let text = with_waves(
            "\n[[wave]]\nname = \"canary\"\nhosts = [\"kiosk-01\"]\n\n[[wave]]\nname = \"north\"\nlabels = { site = \"north\" }\n\n[[wave]]\nname = \"rest\"\nrest = true\n\n[policy]\nmax_unavailable = 1\nmax_failed = 2\nsoak = \"5m\"\nwave_deadline = \"1h\"\nhealth_deadline = 90\nheartbeat_interval = \"10s\"\non_fail = \"rollback\"\nconfirm = \"local\"\n",
        );
        let spec = parse("r.toml", &text).unwrap();
        assert_eq!(spec.id, "web-142");
        assert_eq!(
            spec.target,
            TargetSpec::Generation(Target::Native(NativeTarget {
                digest: format!("sha256:{D}"),
                artifact: format!("sha256-{A}"),
                artifact_sha256: A.into(),
                size: 81234,
            }))
        );
        assert_eq!(spec.waves.len(), 3);
        assert_eq!(
            spec.waves[0].hosts,
            HostSelector::Hosts(vec!["kiosk-01".into()])
        );
        assert_eq!(
            spec.waves[1].hosts,
            HostSelector::Labels(BTreeMap::from([("site".into(), "north".into())]))
        );
        assert_eq!(spec.waves[2].hosts, HostSelector::Rest);
        let p = &spec.policy;
        assert_eq!((p.max_unavailable, p.max_failed), (1, 2));
        assert_eq!(p.soak, Duration::from_secs(300));
        assert_eq!(p.wave_deadline, Duration::from_secs(3600));
        assert_eq!(p.health_deadline, Duration::from_secs(90));
        assert_eq!(p.heartbeat_interval, Duration::from_secs(10));
        assert_eq!(
            (p.on_fail, p.confirm),
            (OnFail::Rollback, ConfirmMode::Local)
        );
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<RolloutSpec>(&json).unwrap(), spec);
    }

    #[test]
    fn policy_defaults_and_other_targets() {
        let spec = parse(
            "r.toml",
            "id = \"web-1\"\n[target.sweep]\napp = \"web\"\n[[wave]]\nname = \"all\"\nrest = true\n",
        )
        .unwrap();
        assert_eq!(spec.policy, Policy::default());
        assert_eq!(
            spec.target,
            TargetSpec::Sweep {
                app: "web".into(),
                release: None
            }
        );
        let spec = parse(
            "r.toml",
            &format!("id = \"a1\"\n[target.cutover]\ntarget = \"agent\"\nversion = \"0.2.1\"\nurl = \"https://x/a\"\nsha256 = \"{A}\"\n[[wave]]\nname = \"all\"\nrest = true\n"),
        )
        .unwrap();
        assert!(matches!(spec.target, TargetSpec::Cutover { .. }));
        let spec = parse(
            "r.toml",
            "id = \"n1\"\n[target.generation]\nsystem = \"/nix/store/abc-nixos-system\"\n[[wave]]\nname = \"all\"\nrest = true\n",
        )
        .unwrap();
        assert_eq!(
            spec.target,
            TargetSpec::Generation(Target::System {
                path: "/nix/store/abc-nixos-system".into()
            })
        );
    }

    #[test]
    fn durations_take_units_or_whole_seconds() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        for bad in ["", "5", "m", "1.5h", "5 m", "-1s", "2d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn invalid_toml_names_its_place() {
        let e = err("id = \"web\"\nid = \"again\"\n");
        assert!(e.starts_with("2:1: invalid TOML"), "{e}");
    }

    #[test]
    fn unknown_key_is_reported_at_the_key() {
        let e = err(&with_waves(
            "[[wave]]\nname = \"all\"\nrest = true\n[policy]\n  max_faild = 1\n",
        ));
        assert_eq!(
            e,
            "8:3: unknown key `max_faild` in `policy`; expected one of: max_unavailable, max_failed, soak, wave_deadline, health_deadline, heartbeat_interval, on_fail, confirm"
        );
        let e = err(&format!(
            "id = \"w\"\nowner = \"x\"\n{}[[wave]]\nname = \"a\"\nrest = true\n",
            native()
        ));
        assert_eq!(
            e,
            "2:1: unknown key `owner`; expected one of: id, target, wave, policy"
        );
    }

    #[test]
    fn wrong_type_says_what_was_expected() {
        let e = err(&with_waves(
            "[[wave]]\nname = \"all\"\nrest = true\n[policy]\nmax_failed = \"two\"\n",
        ));
        assert_eq!(
            e,
            "8:14: `policy.max_failed`: expected a non-negative integer, found string \"two\""
        );
        let e = err(&with_waves(
            "[[wave]]\nname = \"all\"\nrest = true\n[policy]\nsoak = \"5 minutes\"\n",
        ));
        assert_eq!(
            e,
            "8:8: `policy.soak`: expected a duration like \"30s\", \"5m\", \"1h\" or whole seconds, found string \"5 minutes\""
        );
        let e = err(&with_waves(
            "[[wave]]\nname = \"all\"\nrest = true\n[policy]\non_fail = \"retry\"\n",
        ));
        assert_eq!(
            e,
            "8:11: `policy.on_fail`: expected one of \"pause\", \"rollback\", found \"retry\""
        );
    }

    #[test]
    fn bad_ids_are_reported_at_the_value() {
        let e = err(&format!(
            "id = \"Web.142\"\n{}[[wave]]\nname = \"a\"\nrest = true\n",
            native()
        ));
        assert_eq!(
            e,
            "1:6: `id`: rollout id \"Web.142\": expected 1 to 63 of a-z, 0-9 and '-', starting with a letter or digit"
        );
        let e = err(&with_waves(
            "[[wave]]\nname = \"c\"\nhosts = [\"ok\", \"kiosk_01\"]\n",
        ));
        assert_eq!(
            e,
            "6:16: `wave[0].hosts[1]`: host id \"kiosk_01\": expected 1 to 63 of a-z, 0-9 and '-', starting with a letter or digit"
        );
    }

    #[test]
    fn an_explicit_host_in_two_waves_is_an_error_at_the_second() {
        let e = err(&with_waves(
            "[[wave]]\nname = \"canary\"\nhosts = [\"kiosk-01\"]\n[[wave]]\nname = \"two\"\nhosts = [\"kiosk-02\", \"kiosk-01\"]\n",
        ));
        assert_eq!(
            e,
            "9:22: `wave[1].hosts[1]`: host \"kiosk-01\" is already in wave \"canary\" (line 6); a host is rolled out once"
        );
    }

    #[test]
    fn waves_missing_or_empty_are_errors() {
        let e = err(&format!("id = \"w\"\n{}", native()));
        assert_eq!(e, "1:1: missing `[[wave]]`: expected at least one wave");
        let e = err(&with_waves("[[wave]]\nname = \"c\"\nhosts = []\n"));
        assert_eq!(
            e,
            "6:9: `wave[0].hosts`: expected at least one host (an empty wave does nothing)"
        );
        let e = err(&with_waves("[[wave]]\nname = \"c\"\nlabels = {}\n"));
        assert_eq!(
            e,
            "6:10: `wave[0].labels`: expected at least one label (`labels = { site = \"north\" }`)"
        );
        let e = err(&with_waves("[[wave]]\nname = \"c\"\n"));
        assert_eq!(
            e,
            "4:1: `wave[0]`: expected exactly one of `hosts`, `labels`, `rest`, found none"
        );
        let e = err(&with_waves(
            "[[wave]]\nname = \"c\"\nrest = true\nhosts = [\"a\"]\n",
        ));
        assert_eq!(
            e,
            "4:1: `wave[0]`: expected exactly one of `hosts`, `labels`, `rest`, found hosts and rest"
        );
        let e = err(&with_waves("[[wave]]\nname = \"c\"\nrest = false\n"));
        assert_eq!(
            e,
            "6:8: `wave[0].rest`: expected `true` (or leave `rest` out), found boolean false"
        );
    }

    #[test]
    fn a_rest_wave_must_be_last() {
        let e = err(&with_waves(
            "[[wave]]\nname = \"most\"\nrest = true\n[[wave]]\nname = \"late\"\nhosts = [\"a\"]\n",
        ));
        assert_eq!(
            e,
            "7:1: `wave[1]`: a wave after the `rest` wave `most` (line 4): `rest = true` must be the last wave"
        );
    }

    #[test]
    fn wave_names_are_unique() {
        let e = err(&with_waves(
            "[[wave]]\nname = \"a\"\nhosts = [\"x\"]\n[[wave]]\nname = \"a\"\nrest = true\n",
        ));
        assert_eq!(
            e,
            "8:8: `wave[1].name`: wave name \"a\" is already used (line 5); expected a unique name"
        );
    }

    #[test]
    fn target_must_be_exactly_one_kind() {
        let e = err(
            "id = \"w\"\n[target.generation]\nsystem = \"/gnu/store/x\"\n[target.sweep]\napp = \"web\"\n[[wave]]\nname = \"a\"\nrest = true\n",
        );
        assert!(
            e.ends_with("`target`: expected exactly one of `generation`, `sweep`, `cutover`, found generation and sweep"),
            "{e}"
        );
        let e = err("id = \"w\"\n[[wave]]\nname = \"a\"\nrest = true\n");
        assert_eq!(
            e,
            "1:1: missing `target` (a table [target.generation], [target.sweep] or [target.cutover])"
        );
        let e = err(
            "id = \"w\"\n[target.generation]\nsystem = \"nix/store/x\"\n[[wave]]\nname = \"a\"\nrest = true\n",
        );
        assert_eq!(
            e,
            "3:10: `target.generation.system`: expected an absolute store path of a system, found \"nix/store/x\""
        );
    }

    #[test]
    fn native_digests_are_checked() {
        let text = format!(
            "id = \"w\"\n[target.generation.native]\ndigest = \"sha256:{D}\"\nartifact = \"sha256-{D}\"\nartifact_sha256 = \"{A}\"\nsize = 1\n[[wave]]\nname = \"a\"\nrest = true\n"
        );
        let e = err(&text);
        assert!(
            e.starts_with(&format!(
                "4:12: `target.generation.native.artifact`: expected \"sha256-{A}\""
            )),
            "{e}"
        );
        let text = format!(
            "id = \"w\"\n[target.generation.native]\ndigest = \"9f\"\nartifact = \"sha256-{A}\"\nartifact_sha256 = \"{A}\"\nsize = 1\n[[wave]]\nname = \"a\"\nrest = true\n"
        );
        assert_eq!(
            err(&text),
            "3:10: `target.generation.native.digest`: expected \"sha256:\" and 64 lowercase hex digits, found \"9f\""
        );
    }

    #[test]
    fn health_deadline_beyond_the_wave_deadline_is_an_error() {
        let e = err(&with_waves(
            "[[wave]]\nname = \"a\"\nrest = true\n[policy]\nwave_deadline = \"1m\"\nhealth_deadline = \"2m\"\n",
        ));
        assert!(
            e.starts_with(
                "9:19: `policy.health_deadline`: expected at most wave_deadline (60 s), found 120 s"
            ),
            "{e}"
        );
        let e = err(&with_waves(
            "[[wave]]\nname = \"a\"\nrest = true\n[policy]\nwave_deadline = 0\n",
        ));
        assert_eq!(
            e,
            "8:17: `policy.wave_deadline`: expected a duration above zero"
        );
    }

    #[test]
    fn every_problem_of_a_file_is_reported() {
        let e = parse(
            "r.toml",
            "id = \"A\"\n[target.sweep]\n[[wave]]\nhosts = [\"a\"]\n[policy]\nmax_failed = -1\n",
        )
        .unwrap_err();
        let lines: Vec<String> =
            e.0.iter()
                .map(|e| format!("{}:{}", e.line, e.column))
                .collect();
        assert_eq!(lines.len(), 4, "{e}");
        assert!(
            e.to_string().lines().all(|l| l.starts_with("r.toml:")),
            "{e}"
        );
    }
}
