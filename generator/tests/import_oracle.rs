//! Every imported compose project is judged by the real consumers, as the
//! generator's own fleets are (`oracle_quadlet.rs`): Podman 5.4's
//! `quadlet -dryrun` accepts every unit and systemd 257's
//! `systemd-analyze verify` every service.
//!
//! Then the semantic round trip: each compose file is interpolated here
//! as compose does it (its own small interpolator below, not the
//! importer's), and every service is compared, field by field, with what
//! the generated unit will run — the podman argv of the `ExecStart=` that
//! systemd would exec (Quadlet's output, unquoted as systemd unquotes it)
//! and the unit's `Restart=` and `TimeoutStartSec=`. Every difference
//! must be named by an import report entry for that service and key (or
//! a parent key); a difference the report does not name is a silent
//! change and fails the test. Compose keys this check does not compare
//! must be named in the report too, or be on the short list of keys that
//! do not change what the container runs.
//!
//! The projects are the in-repo fixtures (`generator/tests/compose/`) and
//! the real public projects in `../shared/corpus/compose/`, read in place.
//! Under `CI=true` a missing shared corpus fails the test. All projects go
//! through one oracle run (the rootfs is entered once).
//!
//! Runs inside the trixie rootfs (`tools/oracle`); fails when it cannot.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_norway::{Mapping, Value};

/// The home directory the import (and compose) expands `~` with.
const HOME: &str = "/home/roundtrip";

struct Case {
    name: String,
    compose: PathBuf,
}

fn compose_file_in(dir: &Path) -> Option<PathBuf> {
    for n in [
        "compose.yaml",
        "compose.yml",
        "docker-compose.yaml",
        "docker-compose.yml",
    ] {
        if dir.join(n).is_file() {
            return Some(dir.join(n));
        }
    }
    None
}

/// The in-repo fixtures, then the shared corpus as `shared/<dir>`.
fn corpus() -> Vec<Case> {
    let mut out = Vec::new();
    let local = common::repo_root().join("generator/tests/compose");
    for e in std::fs::read_dir(&local).unwrap() {
        let dir = e.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let compose =
            compose_file_in(&dir).unwrap_or_else(|| panic!("{}: no compose file", dir.display()));
        out.push(Case {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            compose,
        });
    }
    let shared = common::repo_root().join("../shared/corpus/compose");
    match std::fs::read_dir(&shared) {
        Ok(entries) => {
            let mut n = 0;
            for e in entries {
                let dir = e.unwrap().path();
                if !dir.is_dir() {
                    continue;
                }
                let compose = compose_file_in(&dir)
                    .unwrap_or_else(|| panic!("{}: no compose file", dir.display()));
                out.push(Case {
                    name: format!("shared/{}", dir.file_name().unwrap().to_string_lossy()),
                    compose,
                });
                n += 1;
            }
            assert!(n > 0, "{}: no project", shared.display());
        }
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{}: {e} (the shared corpus is required under CI=true)",
                shared.display()
            );
            eprintln!(
                "SKIPPED the shared corpus: {} cannot be read ({e}); only the in-repo fixtures are checked",
                shared.display()
            );
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn windlass(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_windlass"))
        .env_clear()
        .env("HOME", HOME)
        .args(args)
        .output()
        .unwrap()
}

fn run(args: &[&str]) -> String {
    let o = windlass(args);
    assert!(
        o.status.success(),
        "windlass {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Run once for all projects: each is a directory `/w/<n>` with `out/`.
const SCRIPT: &str = r#"
set -u
for d in /w/*/; do
  d=${d%/}
  [ -d "$d/out/quadlet" ] || continue
  cd "$d"
  QUADLET_UNIT_DIRS=$d/out/quadlet /usr/libexec/podman/quadlet -dryrun >$d/dryrun.out 2>$d/dryrun.err
  echo $? >$d/dryrun.rc
  mkdir -p $d/gen
  QUADLET_UNIT_DIRS=$d/out/quadlet /usr/libexec/podman/quadlet $d/gen $d/gen $d/gen 2>/dev/null
  if [ -d $d/out/systemd ]; then cp $d/out/systemd/* $d/gen/; fi
  units=$(ls $d/gen/*.service $d/gen/*.timer 2>/dev/null)
  SYSTEMD_UNIT_PATH=$d/gen: systemd-analyze verify --recursive-errors=no $units >$d/verify.out 2>$d/verify.err
  echo $? >$d/verify.rc
  SYSTEMD_LOG_TARGET=console SYSTEMD_LOG_LEVEL=debug SYSTEMD_UNIT_PATH=$d/gen: systemd-analyze verify --recursive-errors=no $units >$d/dump.txt 2>/dev/null
done
true
"#;

/// unit → ExecStart argv, from systemd's debug dump (see oracle_quadlet.rs).
fn exec_lines(dump: &str) -> BTreeMap<String, Vec<String>> {
    let mut map = BTreeMap::new();
    let mut unit = String::new();
    let mut in_start = false;
    for line in dump.lines() {
        let t = line.trim().replace("-> ", "→ ");
        if let Some(u) = t.strip_prefix("→ Unit ").and_then(|u| u.strip_suffix(':')) {
            unit = u.to_string();
        } else if t == "→ ExecStart:" {
            in_start = true;
        } else if let Some(cmd) = t.strip_prefix("Command Line: ") {
            if in_start {
                map.insert(unit.clone(), unquote(cmd));
            }
            in_start = false;
        }
    }
    map
}

/// Undoes systemd's `quote_command_line()`, then exec-time `$$` → `$`.
fn unquote(line: &str) -> Vec<String> {
    let b: Vec<char> = line.chars().collect();
    let mut words = Vec::new();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] == ' ' {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let (mut w, mut quoted) = (String::new(), false);
        while i < b.len() && (quoted || b[i] != ' ') {
            let c = b[i];
            i += 1;
            match c {
                '"' => quoted = !quoted,
                '\\' => {
                    let e = b[i];
                    i += 1;
                    let simple = match e {
                        'n' => Some('\n'),
                        't' => Some('\t'),
                        'r' => Some('\r'),
                        'a' => Some('\x07'),
                        'b' => Some('\x08'),
                        'f' => Some('\x0c'),
                        'v' => Some('\x0b'),
                        _ => None,
                    };
                    if let Some(s) = simple {
                        w.push(s);
                    } else if e.is_digit(8) {
                        let oct: String = [e, b[i], b[i + 1]].iter().collect();
                        i += 2;
                        w.push(char::from(u8::from_str_radix(&oct, 8).unwrap()));
                    } else if e == 'x' {
                        let hex: String = [b[i], b[i + 1]].iter().collect();
                        i += 2;
                        w.push(char::from(u8::from_str_radix(&hex, 16).unwrap()));
                    } else {
                        w.push(e);
                    }
                }
                c => w.push(c),
            }
        }
        words.push(w.replace("$$", "$"));
    }
    words
}

/// `[Service]` settings of a generated unit (last one wins).
fn service_settings(unit: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut section = "";
    for line in unit.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            section = if t == "[Service]" { "s" } else { "" };
        } else if section == "s"
            && let Some((k, v)) = t.split_once('=')
        {
            out.insert(k.to_string(), v.to_string());
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Compose, read here: interpolation as compose does it.

/// Interpolates one string as compose does (`$$`, `$VAR`, `${VAR}`,
/// `${VAR:-d}`, `${VAR-d}`, `${VAR:+r}`, `${VAR+r}`, `${VAR:?e}`,
/// `${VAR?e}`, defaults themselves interpolated); an unset variable
/// without a default is the empty string.
fn interpolate(s: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let b: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let name_end = |mut j: usize| {
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == '_') {
            j += 1;
        }
        j
    };
    while i < b.len() {
        if b[i] != '$' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some('$') => {
                out.push('$');
                i += 2;
            }
            Some('{') => {
                // The matching brace, counting nested `${`.
                let (mut depth, mut j) = (1, i + 2);
                while j < b.len() && depth > 0 {
                    if b[j] == '{' && b[j - 1] == '$' {
                        depth += 1;
                    } else if b[j] == '}' {
                        depth -= 1;
                    }
                    j += 1;
                }
                if depth != 0 {
                    return Err(format!("unclosed ${{ in {s:?}"));
                }
                let inner: String = b[i + 2..j - 1].iter().collect();
                let ne = inner
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(inner.len());
                let (name, op) = inner.split_at(ne);
                let val = vars.get(name);
                let set = val.is_some();
                let nonempty = val.is_some_and(|v| !v.is_empty());
                let sub = |t: &str| interpolate(t, vars);
                out.push_str(&match op {
                    "" => val.cloned().unwrap_or_default(),
                    o if o.starts_with(":-") => {
                        if nonempty {
                            val.unwrap().clone()
                        } else {
                            sub(&o[2..])?
                        }
                    }
                    o if o.starts_with('-') => {
                        if set {
                            val.unwrap().clone()
                        } else {
                            sub(&o[1..])?
                        }
                    }
                    o if o.starts_with(":+") => {
                        if nonempty {
                            sub(&o[2..])?
                        } else {
                            String::new()
                        }
                    }
                    o if o.starts_with('+') => {
                        if set {
                            sub(&o[1..])?
                        } else {
                            String::new()
                        }
                    }
                    o if o.starts_with(":?") => {
                        if nonempty {
                            val.unwrap().clone()
                        } else {
                            return Err(format!("{name}: {}", &o[2..]));
                        }
                    }
                    o if o.starts_with('?') => {
                        if set {
                            val.unwrap().clone()
                        } else {
                            return Err(format!("{name}: {}", &o[1..]));
                        }
                    }
                    o => return Err(format!("bad substitution ${{{name}{o}}}")),
                });
                i = j;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
                let e = name_end(i + 1);
                let name: String = b[i + 1..e].iter().collect();
                out.push_str(vars.get(&name).map(String::as_str).unwrap_or_default());
                i = e;
            }
            _ => {
                out.push('$');
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Every string value of `v` interpolated (keys are not).
fn interpolate_all(v: &mut Value, vars: &BTreeMap<String, String>) -> Result<(), String> {
    match v {
        Value::String(s) => *s = interpolate(s, vars)?,
        Value::Sequence(seq) => {
            for x in seq {
                interpolate_all(x, vars)?;
            }
        }
        Value::Mapping(m) => {
            for (_, x) in m.iter_mut() {
                interpolate_all(x, vars)?;
            }
        }
        Value::Tagged(t) => interpolate_all(&mut t.value, vars)?,
        _ => {}
    }
    Ok(())
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn key_text(k: &Value) -> String {
    text(k).unwrap_or_default()
}

/// One value or a list of them, each with its report key.
fn items(key: &str, v: &Value) -> Vec<(String, String)> {
    match v {
        Value::Sequence(s) => s
            .iter()
            .enumerate()
            .filter_map(|(i, x)| text(x).map(|t| (format!("{key}[{i}]"), t)))
            .collect(),
        Value::Null => Vec::new(),
        other => text(other)
            .map(|t| vec![(key.to_string(), t)])
            .unwrap_or_default(),
    }
}

/// A `KEY=value` list or a map, as (report key, name, value).
fn pairs(key: &str, v: &Value) -> Vec<(String, String, Option<String>)> {
    match v {
        Value::Mapping(m) => m
            .iter()
            .map(|(k, x)| {
                let k = key_text(k);
                (format!("{key}.{k}"), k, text(x))
            })
            .collect(),
        Value::Sequence(s) => s
            .iter()
            .enumerate()
            .filter_map(|(i, x)| {
                let t = text(x)?;
                let (k, v) = match t.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (t, None),
                };
                Some((format!("{key}[{i}]"), k, v))
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.as_str(), "true" | "True" | "TRUE" | "1" | "yes"),
        _ => false,
    }
}

/// Docker's reference defaults, written out again here on purpose.
fn docker_image(s: &str) -> String {
    let (name, digest) = s.split_once('@').map_or((s, None), |(n, d)| (n, Some(d)));
    let first = name.split('/').next().unwrap();
    let mut full = if name.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost")
    {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    if !full.rsplit('/').next().unwrap().contains(':') && digest.is_none() {
        full.push_str(":latest");
    }
    if let Some(d) = digest {
        full = format!("{full}@{d}");
    }
    full
}

fn lexical(p: &Path) -> String {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            o => out.push(o),
        }
    }
    out.to_string_lossy().into_owned()
}

/// Go duration (compose's and Podman's format) in microseconds.
fn usec(s: &str) -> Option<u64> {
    windlass::import::convert::duration_usec(s).ok()
}

/// A byte size as docker reads it (`2gb`, `64m`, `1024`).
fn bytes(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let n = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let num: f64 = t[..n].parse().ok()?;
    let mul: u64 = match t[n..].trim_end_matches('b').trim_end_matches('i') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    Some((num * mul as f64) as u64)
}

// ---------------------------------------------------------------------------
// Podman's argv, parsed.

/// `podman run` flags that take the next word as their value.
const VALUE_FLAGS: &[&str] = &[
    "--name",
    "--cidfile",
    "--cgroups",
    "--sdnotify",
    "--tmpfs",
    "--network",
    "--net",
    "-v",
    "--volume",
    "--mount",
    "--publish",
    "-p",
    "--env",
    "-e",
    "--env-file",
    "--label",
    "-l",
    "--secret",
    "--health-cmd",
    "--health-interval",
    "--health-timeout",
    "--health-retries",
    "--health-start-period",
    "--health-startup-cmd",
    "--health-on-failure",
    "--user",
    "-u",
    "--hostname",
    "-h",
    "--shm-size",
    "--security-opt",
    "--ulimit",
    "--cap-add",
    "--cap-drop",
    "--sysctl",
    "--dns",
    "--dns-search",
    "--dns-option",
    "--device",
    "--stop-signal",
    "--stop-timeout",
    "--pids-limit",
    "--entrypoint",
    "--memory",
    "-m",
    "--cpus",
    "--add-host",
    "--network-alias",
    "--ip",
    "--ip6",
    "--workdir",
    "-w",
    "--pull",
    "--log-driver",
    "--log-opt",
    "--group-add",
    "--userns",
    "--uidmap",
    "--gidmap",
    "--annotation",
    "--expose",
    "--read-only-tmpfs",
    "--timezone",
    "--mask",
    "--unmask",
    "--restart",
];

const BOOL_FLAGS: &[&str] = &[
    "--replace",
    "--rm",
    "-d",
    "--detach",
    "--read-only",
    "--privileged",
    "--init",
    "--no-healthcheck",
    "--tty",
    "-t",
    "--interactive",
    "-i",
    "--no-hosts",
    "--publish-all",
    "-P",
    "--rmi",
];

/// One `podman run`: its flags (each taken when a compose key accounts
/// for it), the image and the arguments after it.
struct Run {
    flags: Vec<(String, String, bool)>,
    image: String,
    args: Vec<String>,
}

impl Run {
    fn parse(argv: &[String]) -> Run {
        assert!(
            argv.len() > 2 && argv[0].ends_with("podman") && argv[1] == "run",
            "not a podman run: {argv:?}"
        );
        let mut flags = Vec::new();
        let mut i = 2;
        while i < argv.len() {
            let a = &argv[i];
            if !a.starts_with('-') {
                return Run {
                    flags,
                    image: a.clone(),
                    args: argv[i + 1..].to_vec(),
                };
            }
            if let Some((f, v)) = a.split_once('=').filter(|_| a.starts_with("--")) {
                flags.push((f.to_string(), v.to_string(), false));
            } else if VALUE_FLAGS.contains(&a.as_str()) {
                flags.push((a.clone(), argv[i + 1].clone(), false));
                i += 1;
            } else if BOOL_FLAGS.contains(&a.as_str()) {
                flags.push((a.clone(), String::new(), false));
            } else {
                panic!("unknown podman flag {a} (teach this test its arity): {argv:?}");
            }
            i += 1;
        }
        panic!("no image in {argv:?}")
    }

    /// The values of `flag` not taken yet.
    fn values(&self, flag: &str) -> Vec<String> {
        self.flags
            .iter()
            .filter(|(f, _, t)| f == flag && !t)
            .map(|(_, v, _)| v.clone())
            .collect()
    }

    /// Takes the first untaken `flag` whose value satisfies `pred`.
    fn take(&mut self, flag: &str, pred: impl Fn(&str) -> bool) -> Option<String> {
        let e = self
            .flags
            .iter_mut()
            .find(|(f, v, t)| f == flag && !*t && pred(v))?;
        e.2 = true;
        Some(e.1.clone())
    }

    fn take_all(&mut self, flag: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (f, v, t) in &mut self.flags {
            if f == flag && !*t {
                *t = true;
                out.push(v.clone());
            }
        }
        out
    }

    fn has(&mut self, flag: &str) -> bool {
        self.take(flag, |_| true).is_some()
    }
}

// ---------------------------------------------------------------------------
// The comparison.

/// One difference between compose and the unit, at a compose key.
struct Diff {
    key: String,
    /// Another name of the same key: a list entry `sysctls[1]` is also
    /// `sysctls.NAME`.
    alt: Option<String>,
    what: String,
}

struct Cmp<'a> {
    project: &'a str,
    compose_dir: &'a Path,
    top: &'a Value,
    service: &'a str,
    svc: &'a Mapping,
    vars: &'a BTreeMap<String, String>,
    run: Run,
    unit: BTreeMap<String, String>,
    diffs: Vec<Diff>,
}

impl Cmp<'_> {
    fn diff(&mut self, key: impl Into<String>, what: impl Into<String>) {
        self.diffs.push(Diff {
            key: key.into(),
            alt: None,
            what: what.into(),
        });
    }

    /// A difference at a `pairs` entry: its key, and `prefix.NAME`.
    fn diff_pair(&mut self, key: &str, prefix: &str, name: &str, what: impl Into<String>) {
        self.diffs.push(Diff {
            key: key.to_string(),
            alt: Some(format!("{prefix}.{name}")),
            what: what.into(),
        });
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.svc.get(key).filter(|v| !v.is_null())
    }

    fn compare(&mut self) {
        self.image();
        self.command();
        self.environment();
        self.env_file();
        self.ports();
        self.volumes();
        self.tmpfs();
        self.networks();
        self.restart();
        self.healthcheck();
        self.settings();
        self.resources();
        self.labels_and_hosts();
        self.secrets();
        self.unaccounted_flags();
    }

    fn image(&mut self) {
        let Some(img) = self.get("image").and_then(text) else {
            return;
        };
        let want = docker_image(&img);
        if self.run.image != want {
            let got = self.run.image.clone();
            self.diff("image", format!("{want} runs as {got}"));
        }
    }

    fn words(&mut self, key: &str) -> Option<Vec<String>> {
        match self.get(key)? {
            Value::Sequence(s) => Some(s.iter().map(|x| text(x).unwrap_or_default()).collect()),
            other => match shlex::split(&text(other)?) {
                Some(w) => Some(w),
                None => {
                    self.diff(key, "cannot be split into words");
                    None
                }
            },
        }
    }

    fn command(&mut self) {
        let command = self.words("command");
        let entrypoint = self.words("entrypoint");
        let got_ep: Option<Vec<String>> = self
            .run
            .take("--entrypoint", |_| true)
            .map(|j| serde_json::from_str(&j).unwrap_or_else(|_| vec![j]));
        let args = self.run.args.clone();
        match (entrypoint, got_ep) {
            (Some(ep), Some(got)) => {
                // The generator may carry the whole command in the
                // entrypoint JSON (for arguments `Exec=` cannot hold).
                let mut want = ep;
                want.extend(command.unwrap_or_default());
                let mut have = got;
                have.extend(args);
                if want != have {
                    self.diff(
                        "entrypoint",
                        format!("entrypoint + command {want:?} runs as {have:?}"),
                    );
                }
            }
            (Some(ep), None) => {
                self.diff("entrypoint", format!("{ep:?} is not set"));
                if let Some(c) = command
                    && c != args
                {
                    self.diff("command", format!("{c:?} runs as {args:?}"));
                }
            }
            (None, Some(got)) => {
                // Only as the carrier of a command (see above).
                let mut have = got;
                have.extend(args);
                match command {
                    Some(c) if c == have => {}
                    Some(c) => self.diff("command", format!("{c:?} runs as {have:?}")),
                    None => self.diff("entrypoint", format!("the unit sets {have:?}")),
                }
            }
            (None, None) => match command {
                Some(c) if c != args => self.diff("command", format!("{c:?} runs as {args:?}")),
                Some(_) => {}
                None if !args.is_empty() => {
                    self.diff("command", format!("the unit passes {args:?}"))
                }
                None => {}
            },
        }
    }

    fn environment(&mut self) {
        let env = self.get("environment").cloned().unwrap_or(Value::Null);
        let mut names = BTreeSet::new();
        for (key, name, value) in pairs("environment", &env) {
            names.insert(name.clone());
            // A name alone takes the project's variable (`.env`); unset,
            // compose does not set it either.
            let Some(want) = value.or_else(|| self.vars.get(&name).cloned()) else {
                if let Some(v) = self
                    .run
                    .take("--env", |v| v.split('=').next() == Some(&name))
                {
                    self.diff_pair(
                        &key,
                        "environment",
                        &name,
                        format!("unset under compose, the unit sets {v:?}"),
                    );
                }
                if self
                    .run
                    .take("--secret", |s| secret_env_target(s) == Some(&name))
                    .is_some()
                {
                    self.diff_pair(
                        &key,
                        "environment",
                        &name,
                        format!("unset under compose, the unit reads {name} from a podman secret"),
                    );
                }
                continue;
            };
            let kv = format!("{name}={want}");
            if self.run.take("--env", |v| v == kv).is_some() {
                continue;
            }
            if self
                .run
                .take("--secret", |s| secret_env_target(s) == Some(&name))
                .is_some()
            {
                self.diff_pair(
                    &key,
                    "environment",
                    &name,
                    format!("{name} is read from a podman secret"),
                );
            } else if let Some(v) = self
                .run
                .take("--env", |v| v.split('=').next() == Some(&name))
            {
                self.diff_pair(
                    &key,
                    "environment",
                    &name,
                    format!("{name} is {v:?}, not the compose value"),
                );
            } else {
                self.diff_pair(&key, "environment", &name, format!("{name} is not set"));
            }
        }
        // What the unit sets beyond `environment`: an env_file's variable
        // inlined, or something of its own.
        let from_files = !self.run.values("--env-file").is_empty();
        for v in self.run.take_all("--env") {
            let name = v.split('=').next().unwrap().to_string();
            if !from_files || names.contains(&name) {
                self.diff("environment", format!("the unit also sets {name}"));
            }
        }
    }

    fn env_file(&mut self) {
        let Some(v) = self.get("env_file").cloned() else {
            return;
        };
        let list: Vec<(String, String)> = match &v {
            Value::Mapping(_) => vec![],
            Value::Sequence(s) => s
                .iter()
                .enumerate()
                .filter_map(|(i, x)| {
                    let p = match x {
                        Value::Mapping(m) => m.get("path").and_then(text)?,
                        o => text(o)?,
                    };
                    Some((format!("env_file[{i}]"), p))
                })
                .collect(),
            o => items("env_file", o),
        };
        for (key, p) in list {
            let abs = lexical(&self.compose_dir.join(p));
            if self.run.take("--env-file", |v| v == abs).is_none() {
                self.diff(key, format!("{abs} is not read"));
            }
        }
    }

    fn ports(&mut self) {
        let Some(Value::Sequence(list)) = self.get("ports").cloned() else {
            return;
        };
        for (i, p) in list.iter().enumerate() {
            let key = format!("ports[{i}]");
            let want = match p {
                Value::Mapping(m) => {
                    let target = m.get("target").and_then(text).unwrap_or_default();
                    let published = m.get("published").and_then(text).unwrap_or_default();
                    let ip = m.get("host_ip").and_then(text).unwrap_or_default();
                    let proto = m.get("protocol").and_then(text).unwrap_or("tcp".into());
                    port_tuples(&ip, &published, &target, &proto)
                }
                other => parse_port(&text(other).unwrap_or_default()),
            };
            let Some(want) = want else {
                self.diff(key, "not a port this test reads");
                continue;
            };
            let mut missing = Vec::new();
            for w in &want {
                if self
                    .run
                    .take("--publish", |v| {
                        parse_port(v).is_some_and(|t| t == [w.clone()])
                    })
                    .is_none()
                {
                    missing.push(w.clone());
                }
            }
            if !missing.is_empty() {
                self.diff(key, format!("{missing:?} not published"));
            }
        }
    }

    fn volume_name(&self, key: &str) -> String {
        let def = self.top.get("volumes").and_then(|v| v.get(key));
        let external = truthy(def.and_then(|d| d.get("external")));
        match def.and_then(|d| d.get("name")).and_then(text) {
            Some(n) => n,
            None if external => key.to_string(),
            None => format!("{}_{key}", self.project),
        }
    }

    fn host_path(&self, src: &str) -> String {
        let expanded = if src == "~" {
            HOME.to_string()
        } else if let Some(rest) = src.strip_prefix("~/") {
            format!("{HOME}/{rest}")
        } else {
            src.to_string()
        };
        lexical(&self.compose_dir.join(expanded))
    }

    fn volumes(&mut self) {
        let Some(Value::Sequence(list)) = self.get("volumes").cloned() else {
            return;
        };
        for (i, v) in list.iter().enumerate() {
            let key = format!("volumes[{i}]");
            // (source, target, options) as Podman's `-v` reads them, each
            // option with its report key.
            let (src, dst, mut opts): (Option<String>, String, BTreeMap<String, String>) = match v {
                Value::Mapping(m) => {
                    let ty = m.get("type").and_then(text).unwrap_or("volume".into());
                    let target = m.get("target").and_then(text).unwrap_or_default();
                    if ty == "tmpfs" {
                        let mut o = Vec::new();
                        if let Some(s) = m.get("tmpfs").and_then(|t| t.get("size")).and_then(text) {
                            o.push(format!("size={s}"));
                        }
                        if let Some(s) = m.get("tmpfs").and_then(|t| t.get("mode")).and_then(text) {
                            o.push(format!("mode={s}"));
                        }
                        let want = if o.is_empty() {
                            target.clone()
                        } else {
                            format!("{target}:{}", o.join(","))
                        };
                        if !self.take_tmpfs(&want) {
                            let t = target.clone();
                            match self
                                .run
                                .take("--tmpfs", |g| g.split(':').next() == Some(&t))
                            {
                                Some(g) => {
                                    self.diff(key, format!("tmpfs {want} is mounted as {g}"))
                                }
                                None => self.diff(key, format!("tmpfs {want} is not mounted")),
                            }
                        }
                        continue;
                    }
                    let mut o = BTreeMap::new();
                    if truthy(m.get("read_only")) {
                        o.insert("ro".to_string(), format!("{key}.read_only"));
                    }
                    if let Some(b) = m.get("bind") {
                        if let Some(s) = b.get("selinux").and_then(text) {
                            o.insert(s, format!("{key}.bind.selinux"));
                        }
                        if let Some(s) = b.get("propagation").and_then(text) {
                            o.insert(s, format!("{key}.bind.propagation"));
                        }
                    }
                    if let Some(vo) = m.get("volume") {
                        if truthy(vo.get("nocopy")) {
                            o.insert("nocopy".into(), format!("{key}.volume.nocopy"));
                        }
                        if let Some(s) = vo.get("subpath").and_then(text) {
                            o.insert(format!("subpath={s}"), format!("{key}.volume.subpath"));
                        }
                    }
                    let src = m.get("source").and_then(text).map(|s| {
                        if ty == "bind" {
                            self.host_path(&s)
                        } else {
                            self.volume_name(&s)
                        }
                    });
                    (src, target, o)
                }
                other => {
                    let s = text(other).unwrap_or_default();
                    let parts: Vec<&str> = s.split(':').collect();
                    match parts.len() {
                        1 => (None, s.clone(), BTreeMap::new()),
                        _ => {
                            let source = parts[0];
                            let src = if source.starts_with(['/', '.', '~']) {
                                self.host_path(source)
                            } else {
                                self.volume_name(source)
                            };
                            let o = parts
                                .get(2)
                                .map(|o| {
                                    o.split(',')
                                        .map(|x| (x.to_string(), format!("{key}:{x}")))
                                        .collect()
                                })
                                .unwrap_or_default();
                            (Some(src), parts[1].to_string(), o)
                        }
                    }
                }
            };
            // Defaults and Docker-Desktop-only consistency modes.
            for o in ["rw", "cached", "delegated", "consistent"] {
                opts.remove(o);
            }
            let found = self.run.take("-v", |got| {
                let g: Vec<&str> = got.split(':').collect();
                let (gs, gd, go) = match g.len() {
                    1 => (None, g[0], ""),
                    2 => (Some(g[0]), g[1], ""),
                    _ => (Some(g[0]), g[1], g[2]),
                };
                let gopts: BTreeSet<String> = go
                    .split(',')
                    .filter(|o| !o.is_empty() && *o != "rw")
                    .map(str::to_string)
                    .collect();
                gd == dst && gs.map(str::to_string) == src && gopts.iter().eq(opts.keys())
            });
            if found.is_none() {
                let other = self
                    .run
                    .take("-v", |got| got.split(':').nth(1) == Some(dst.as_str()));
                let want = format!(
                    "{}{dst}{}",
                    src.clone().map(|s| format!("{s}:")).unwrap_or_default(),
                    if opts.is_empty() {
                        String::new()
                    } else {
                        format!(":{}", opts.keys().cloned().collect::<Vec<_>>().join(","))
                    }
                );
                match other {
                    Some(o) if o.split(':').next() == src.as_deref() => {
                        // The same mount with other options: each by its key.
                        let got: BTreeSet<&str> = o
                            .split(':')
                            .nth(2)
                            .unwrap_or("")
                            .split(',')
                            .filter(|x| !x.is_empty() && *x != "rw")
                            .collect();
                        for (opt, k) in &opts {
                            if !got.contains(opt.as_str()) {
                                self.diff(k.clone(), format!("{want} is mounted as {o}"));
                            }
                        }
                        if got.iter().any(|g| !opts.contains_key(*g)) {
                            self.diff(key, format!("{want} is mounted as {o}"));
                        }
                    }
                    Some(o) => self.diff(key, format!("{want} is mounted as {o}")),
                    None => self.diff(key, format!("{want} is not mounted")),
                }
            }
        }
    }

    fn take_tmpfs(&mut self, want: &str) -> bool {
        let norm = |s: &str| -> (String, BTreeSet<String>) {
            let (t, o) = s.split_once(':').unwrap_or((s, ""));
            (
                t.to_string(),
                o.split(',')
                    .filter(|x| !x.is_empty())
                    .map(|x| match x.strip_prefix("size=").and_then(bytes) {
                        Some(b) => format!("size={b}"),
                        None => x.to_string(),
                    })
                    .collect(),
            )
        };
        let w = norm(want);
        self.run.take("--tmpfs", |g| norm(g) == w).is_some()
    }

    fn tmpfs(&mut self) {
        let Some(v) = self.get("tmpfs").cloned() else {
            return;
        };
        for (key, t) in items("tmpfs", &v) {
            if !self.take_tmpfs(&t) {
                self.diff(key, format!("tmpfs {t} is not mounted as written"));
            }
        }
    }

    /// Networks joined, the names the container answers to on each, and
    /// its static addresses.
    fn networks(&mut self) {
        let nets: Vec<String> = self.run.take_all("--network");
        // network → (aliases, ip, ip6) as Podman got them.
        let mut got: BTreeMap<String, NetworkGot> = BTreeMap::new();
        for n in &nets {
            let (name, opts) = n.split_once(':').unwrap_or((n, ""));
            let e = got.entry(name.to_string()).or_default();
            for o in opts.split(',').filter(|o| !o.is_empty()) {
                match o.split_once('=') {
                    Some(("alias", a)) => {
                        e.0.insert(a.to_string());
                    }
                    Some(("ip", a)) if a.contains(':') => e.2 = Some(a.to_string()),
                    Some(("ip", a)) => e.1 = Some(a.to_string()),
                    Some(("ip6", a)) => e.2 = Some(a.to_string()),
                    _ => self.diff("networks", format!("network option {o} not read here")),
                }
            }
        }
        let global_aliases: BTreeSet<String> =
            self.run.take_all("--network-alias").into_iter().collect();
        let container = self.run.take("--name", |_| true).unwrap_or_default();
        if let Some(cn) = self.get("container_name").and_then(text)
            && cn != container
        {
            self.diff(
                "container_name",
                format!("the container is named {container}, not {cn}"),
            );
        }
        if let Some(mode) = self.get("network_mode").and_then(text) {
            let want = match mode.as_str() {
                "host" | "none" | "bridge" => mode.clone(),
                m => m.replacen("service:", "container:", 1),
            };
            if nets != [want.clone()] {
                self.diff("network_mode", format!("{want} runs on {nets:?}"));
            }
            return;
        }
        let (top, project) = (self.top, self.project);
        let top_net = |k: &str| -> String {
            let def = top.get("networks").and_then(|v| v.get(k));
            let external = truthy(def.and_then(|d| d.get("external")));
            match def.and_then(|d| d.get("name")).and_then(text) {
                Some(n) => n,
                None if external => k.to_string(),
                None => format!("{project}_{k}"),
            }
        };
        // (report key, compose network key, settings)
        let want: Vec<(String, String, Option<Mapping>)> = match self.get("networks") {
            None => vec![("networks".into(), "default".into(), None)],
            Some(Value::Sequence(s)) => s
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("networks[{i}]"), text(n).unwrap_or_default(), None))
                .collect(),
            Some(Value::Mapping(m)) => m
                .iter()
                .map(|(k, v)| {
                    let k = key_text(k);
                    (format!("networks.{k}"), k, v.as_mapping().cloned())
                })
                .collect(),
            Some(_) => vec![],
        };
        let mut seen = BTreeSet::new();
        for (key, net, settings) in want {
            let name = top_net(&net);
            seen.insert(name.clone());
            let Some((aliases, ip, ip6)) = got.get(&name).cloned() else {
                self.diff(key, format!("network {name} is not joined"));
                continue;
            };
            let names: BTreeSet<String> = aliases
                .union(&global_aliases)
                .cloned()
                .chain([container.clone()])
                .collect();
            if !names.contains(self.service) {
                self.diff(
                    "(service name)",
                    format!(
                        "other containers on {name} cannot reach it as {}",
                        self.service
                    ),
                );
            }
            let s = settings.unwrap_or_default();
            if let Some(Value::Sequence(a)) = s.get("aliases") {
                for (i, x) in a.iter().enumerate() {
                    let x = text(x).unwrap_or_default();
                    if !names.contains(&x) {
                        self.diff(
                            format!("{key}.aliases[{i}]"),
                            format!("alias {x} is not set on {name}"),
                        );
                    }
                }
            }
            for (k, have) in [("ipv4_address", &ip), ("ipv6_address", &ip6)] {
                let want = s.get(k).and_then(text);
                if want != *have {
                    self.diff(
                        format!("{key}.{k}"),
                        format!("{want:?} on {name} is {have:?} in the unit"),
                    );
                }
            }
        }
        for n in got.keys() {
            if !seen.contains(n) {
                self.diff("networks", format!("the unit also joins {n}"));
            }
        }
    }

    fn restart(&mut self) {
        let want = self.get("restart").and_then(text).unwrap_or("no".into());
        let have = self.unit.get("Restart").cloned().unwrap_or("no".into());
        let same = matches!(
            (want.as_str(), have.as_str()),
            ("no", "no") | ("always", "always") | ("on-failure", "on-failure")
        );
        if !same {
            self.diff("restart", format!("{want} became Restart={have}"));
        }
    }

    fn healthcheck(&mut self) {
        let hc = self.get("healthcheck").and_then(Value::as_mapping).cloned();
        let cmd = self.run.take("--health-cmd", |_| true);
        let mut timing = BTreeMap::new();
        for f in ["interval", "timeout", "retries", "start-period"] {
            if let Some(v) = self.run.take(&format!("--health-{f}"), |_| true) {
                timing.insert(f, v);
            }
        }
        let no_check = self.run.has("--no-healthcheck");
        let healthy_gate = self.run.take("--sdnotify", |v| v == "healthy").is_some();
        let Some(hc) = hc else {
            if cmd.is_some() || healthy_gate {
                self.diff("healthcheck", "the unit adds a health check");
            }
            return;
        };
        let disabled = truthy(hc.get("disable"))
            || matches!(hc.get("test"), Some(Value::Sequence(s)) if s.first().and_then(text).as_deref() == Some("NONE"));
        if disabled {
            if !no_check {
                self.diff("healthcheck.disable", "the image's health check still runs");
            }
            return;
        }
        let want_cmd = hc.get("test").map(health_argv);
        let have_cmd = cmd.as_deref().map(podman_health_argv);
        if want_cmd != have_cmd {
            self.diff(
                "healthcheck.test",
                format!("{want_cmd:?} runs as {have_cmd:?}"),
            );
        }
        // Effective timing: compose's and Podman's defaults are the same.
        let mut window = 0u64;
        let defaults = [
            ("interval", "interval", 30_000_000u64),
            ("timeout", "timeout", 30_000_000),
            ("start_period", "start-period", 0),
        ];
        let mut eff = BTreeMap::new();
        for (ck, pk, default) in defaults {
            let want = hc
                .get(ck)
                .and_then(text)
                .and_then(|s| usec(&s))
                .unwrap_or(default);
            let have = timing.get(pk).and_then(|s| usec(s)).unwrap_or(default);
            if want != have {
                self.diff(
                    format!("healthcheck.{ck}"),
                    format!("{want}µs runs as {have}µs"),
                );
            }
            eff.insert(ck, want);
        }
        let retries = hc
            .get("retries")
            .and_then(text)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(3);
        let have_r = timing
            .get("retries")
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(3);
        if retries != have_r {
            self.diff("healthcheck.retries", format!("{retries} runs as {have_r}"));
        }
        window += eff["start_period"] + retries * (eff["interval"] + eff["timeout"]);
        if hc.contains_key("start_interval") {
            self.diff(
                "healthcheck.start_interval",
                "Podman checks at `interval` from the start",
            );
        }
        if healthy_gate {
            // Compose starts dependents without waiting for health unless
            // asked to, and never stops an unhealthy container.
            let limit = self.unit.get("TimeoutStartSec").and_then(|s| {
                s.parse::<u64>()
                    .ok()
                    .map(|x| x * 1_000_000)
                    .or_else(|| usec(s))
            });
            match limit {
                Some(l) if l < window => self.diff(
                    "healthcheck",
                    format!("the unit fails after TimeoutStartSec={l}µs, before the health window {window}µs ends"),
                ),
                _ => self.diff(
                    "healthcheck",
                    "the unit starts only once the check passes (Notify=healthy)",
                ),
            }
        }
    }

    /// Kernel, security and process settings (issue 16, point 5) and the
    /// user, read-only root and stop settings.
    fn settings(&mut self) {
        let simple = [
            ("user", "--user"),
            ("hostname", "--hostname"),
            ("working_dir", "--workdir"),
        ];
        for (key, flag) in simple {
            let want = self.get(key).and_then(text);
            let have = self.run.take(flag, |_| true);
            if want != have {
                self.diff(key, format!("{want:?} runs as {have:?}"));
            }
        }
        for (key, flag) in [
            ("privileged", "--privileged"),
            ("init", "--init"),
            ("read_only", "--read-only"),
            ("tty", "--tty"),
            ("stdin_open", "--interactive"),
        ] {
            let want = truthy(self.get(key));
            let have = self.run.has(flag);
            if want != have {
                self.diff(key, format!("{want} runs as {have}"));
            }
        }
        if truthy(self.get("read_only")) {
            // Podman (not Docker) mounts writable tmpfs on /tmp, /var/tmp,
            // /run and /dev unless told not to.
            let rot = self.run.take("--read-only-tmpfs", |_| true);
            if rot.as_deref() != Some("false") {
                self.diff(
                    "read_only",
                    "Podman mounts writable tmpfs on /tmp, /var/tmp and /run of the read-only root (--read-only-tmpfs)",
                );
            }
        }
        // shm_size
        let want = self.get("shm_size").and_then(text);
        let have = self.run.take("--shm-size", |_| true);
        if want.as_deref().and_then(bytes) != have.as_deref().and_then(bytes) {
            self.diff("shm_size", format!("{want:?} runs as {have:?}"));
        }
        // Capabilities.
        let cap = |c: &str| {
            let up = c.to_ascii_uppercase();
            if up == "ALL" || up.starts_with("CAP_") {
                up
            } else {
                format!("CAP_{up}")
            }
        };
        for (key, flag) in [("cap_add", "--cap-add"), ("cap_drop", "--cap-drop")] {
            let v = self.get(key).cloned().unwrap_or(Value::Null);
            for (k, c) in items(key, &v) {
                let want = cap(&c);
                if self.run.take(flag, |g| cap(g) == want).is_none() {
                    self.diff(k, format!("{want} is not in {flag}"));
                }
            }
            for g in self.run.take_all(flag) {
                self.diff(key, format!("the unit also has {flag} {g}"));
            }
        }
        // security_opt
        let v = self.get("security_opt").cloned().unwrap_or(Value::Null);
        let opts = items("security_opt", &v);
        let kind = |o: &str| o.split([':', '=']).next().unwrap().to_string();
        for (i, (k, o)) in opts.iter().enumerate() {
            let want = match o.split_once([':', '=']) {
                Some(("no-new-privileges", "true")) => Some("no-new-privileges".to_string()),
                Some(("no-new-privileges", _)) => None,
                Some(("systempaths", "unconfined")) => Some("unmask=ALL".to_string()),
                Some((kind, rest)) => Some(format!("{kind}={rest}")),
                None => Some(o.clone()),
            };
            let Some(want) = want else { continue };
            // Docker keeps the last seccomp and apparmor profile.
            let single = matches!(kind(o).as_str(), "seccomp" | "apparmor");
            if single && opts[i + 1..].iter().any(|(_, l)| kind(l) == kind(o)) {
                continue;
            }
            let k = k.clone();
            let norm = |g: &str| match g.split_once([':', '=']) {
                Some(("no-new-privileges", "true")) | None => {
                    g.split([':', '=']).next().unwrap().to_string()
                }
                Some((kind, rest)) => format!("{kind}={rest}"),
            };
            if self
                .run
                .take("--security-opt", |g| norm(g) == want)
                .is_none()
            {
                self.diff(k, format!("--security-opt {want} is not set"));
            }
        }
        for g in self.run.take_all("--security-opt") {
            self.diff(
                "security_opt",
                format!("the unit also has --security-opt {g}"),
            );
        }
        // ulimits: name → (soft, hard)
        if let Some(Value::Mapping(m)) = self.get("ulimits").cloned() {
            for (k, v) in &m {
                let name = key_text(k);
                let (soft, hard) = match v {
                    Value::Mapping(l) => (
                        l.get("soft").and_then(text).unwrap_or_default(),
                        l.get("hard").and_then(text).unwrap_or_default(),
                    ),
                    o => {
                        let t = text(o).unwrap_or_default();
                        (t.clone(), t)
                    }
                };
                let prefix = format!("{name}=");
                let got = self.run.take("--ulimit", |g| g.starts_with(&prefix));
                let ok = got
                    .as_deref()
                    .and_then(|g| g.strip_prefix(&prefix))
                    .is_some_and(|g| {
                        let (s, h) = g.split_once(':').unwrap_or((g, g));
                        s == soft && h == hard
                    });
                if !ok {
                    self.diff(
                        format!("ulimits.{name}"),
                        format!("{soft}:{hard} runs as {got:?}"),
                    );
                }
            }
        }
        for g in self.run.take_all("--ulimit") {
            self.diff("ulimits", format!("the unit also has --ulimit {g}"));
        }
        // sysctls
        let v = self.get("sysctls").cloned().unwrap_or(Value::Null);
        for (k, name, val) in pairs("sysctls", &v) {
            let want = format!("{name}={}", val.unwrap_or_default());
            if self.run.take("--sysctl", |g| g == want).is_none() {
                self.diff_pair(&k, "sysctls", &name, format!("--sysctl {want} is not set"));
            }
        }
        for g in self.run.take_all("--sysctl") {
            self.diff("sysctls", format!("the unit also has --sysctl {g}"));
        }
        // dns, devices
        let v = self.get("dns").cloned().unwrap_or(Value::Null);
        for (k, d) in items("dns", &v) {
            if self.run.take("--dns", |g| g == d).is_none() {
                self.diff(k, format!("--dns {d} is not set"));
            }
        }
        for g in self.run.take_all("--dns") {
            self.diff("dns", format!("the unit also has --dns {g}"));
        }
        let dev = |s: &str| {
            let p: Vec<&str> = s.split(':').collect();
            let src = p[0].to_string();
            let (dst, perm) = match p.len() {
                1 => (src.clone(), "rwm".to_string()),
                2 if !p[1].starts_with('/') => (src.clone(), p[1].to_string()),
                2 => (p[1].to_string(), "rwm".to_string()),
                _ => (p[1].to_string(), p[2].to_string()),
            };
            (src, dst, perm)
        };
        let v = self.get("devices").cloned().unwrap_or(Value::Null);
        for (k, d) in items("devices", &v) {
            if self.run.take("--device", |g| dev(g) == dev(&d)).is_none() {
                self.diff(k, format!("--device {d} is not set"));
            }
        }
        for g in self.run.take_all("--device") {
            self.diff("devices", format!("the unit also has --device {g}"));
        }
        // stop_signal, pids_limit, stop_grace_period
        let sig = |s: &str| {
            let up = s.to_ascii_uppercase();
            if up.starts_with("SIG") || up.parse::<u32>().is_ok() {
                up
            } else {
                format!("SIG{up}")
            }
        };
        let want = self.get("stop_signal").and_then(text).map(|s| sig(&s));
        let have = self.run.take("--stop-signal", |_| true).map(|s| sig(&s));
        if want != have {
            self.diff("stop_signal", format!("{want:?} runs as {have:?}"));
        }
        let pids = |s: &str| match s.parse::<i64>() {
            Ok(n) if n <= 0 => "-1".to_string(),
            _ => s.to_string(),
        };
        let want = self.get("pids_limit").and_then(text).map(|s| pids(&s));
        let have = self.run.take("--pids-limit", |_| true).map(|s| pids(&s));
        if want != have {
            self.diff("pids_limit", format!("{want:?} runs as {have:?}"));
        }
        let want = self
            .get("stop_grace_period")
            .and_then(text)
            .and_then(|s| usec(&s));
        let have = self
            .run
            .take("--stop-timeout", |_| true)
            .and_then(|s| s.parse::<u64>().ok())
            .map(|s| s * 1_000_000);
        // Podman's default (10 s) is compose's.
        if want.unwrap_or(10_000_000) != have.unwrap_or(10_000_000) {
            self.diff(
                "stop_grace_period",
                format!("{want:?}µs runs as {have:?}µs"),
            );
        }
    }

    fn resources(&mut self) {
        let limits = self
            .get("deploy")
            .and_then(|d| d.get("resources"))
            .and_then(|r| r.get("limits"))
            .cloned();
        let (mkey, mem) = match (
            self.get("mem_limit"),
            limits.as_ref().and_then(|l| l.get("memory")),
        ) {
            (Some(m), _) => ("mem_limit", text(m)),
            (None, Some(m)) => ("deploy.resources.limits.memory", text(m)),
            _ => ("mem_limit", None),
        };
        let have = self.run.take("--memory", |_| true);
        if mem.as_deref().and_then(bytes) != have.as_deref().and_then(bytes) {
            self.diff(mkey, format!("{mem:?} runs as {have:?}"));
        }
        let (ckey, cpus) = match (
            self.get("cpus"),
            limits.as_ref().and_then(|l| l.get("cpus")),
        ) {
            (Some(c), _) => ("cpus", text(c)),
            (None, Some(c)) => ("deploy.resources.limits.cpus", text(c)),
            _ => ("cpus", None),
        };
        let f = |s: &str| s.parse::<f64>().ok().filter(|x| *x > 0.0);
        let have = self.run.take("--cpus", |_| true);
        if cpus.as_deref().and_then(f) != have.as_deref().and_then(f) {
            self.diff(ckey, format!("{cpus:?} runs as {have:?}"));
        }
    }

    fn labels_and_hosts(&mut self) {
        let v = self.get("labels").cloned().unwrap_or(Value::Null);
        let mut keys = BTreeMap::new();
        for (k, name, val) in pairs("labels", &v) {
            let want = format!("{name}={}", val.unwrap_or_default());
            if self.run.take("--label", |g| g == want).is_none() {
                self.diff_pair(
                    &k,
                    "labels",
                    &name,
                    format!("label {name} is not set as written"),
                );
            }
            keys.insert(name, k);
        }
        // windlass's own labels say which app it is; they change nothing.
        for l in self.run.take_all("--label") {
            let name = l.split('=').next().unwrap().to_string();
            if l.starts_with("io.windlass.") || l.starts_with("io.containers.autoupdate=") {
                continue;
            }
            match keys.get(&name).cloned() {
                Some(k) => self.diff_pair(
                    &k,
                    "labels",
                    &name,
                    format!("the unit sets the label as {l:?}"),
                ),
                None => self.diff("labels", format!("the unit also has the label {l}")),
            }
        }
        let v = self.get("extra_hosts").cloned().unwrap_or(Value::Null);
        let host = |s: &str| {
            let (h, ip) = s.split_once(['=', ':']).unwrap_or((s, ""));
            (h.to_string(), ip.trim_matches(['[', ']']).to_string())
        };
        let list: Vec<(String, String)> = match &v {
            Value::Mapping(m) => m
                .iter()
                .map(|(k, x)| {
                    let k = key_text(k);
                    (
                        format!("extra_hosts.{k}"),
                        format!("{k}={}", text(x).unwrap_or_default()),
                    )
                })
                .collect(),
            o => items("extra_hosts", o),
        };
        for (k, h) in list {
            if self
                .run
                .take("--add-host", |g| host(g) == host(&h))
                .is_none()
            {
                self.diff(k, format!("--add-host {h} is not set"));
            }
        }
    }

    fn secrets(&mut self) {
        let Some(Value::Sequence(list)) = self.get("secrets").cloned() else {
            return;
        };
        for (i, s) in list.iter().enumerate() {
            let (source, target) = match s {
                Value::Mapping(m) => (
                    m.get("source").and_then(text).unwrap_or_default(),
                    m.get("target").and_then(text),
                ),
                o => (text(o).unwrap_or_default(), None),
            };
            let target = target.unwrap_or(source.clone());
            let path = if target.starts_with('/') {
                target
            } else {
                format!("/run/secrets/{target}")
            };
            let found = self.run.take("--secret", |g| {
                let opts: Vec<&str> = g.split(',').collect();
                let ty = opts
                    .iter()
                    .find_map(|o| o.strip_prefix("type="))
                    .unwrap_or("mount");
                let t = opts
                    .iter()
                    .find_map(|o| o.strip_prefix("target="))
                    .map(|t| {
                        if t.starts_with('/') {
                            t.to_string()
                        } else {
                            format!("/run/secrets/{t}")
                        }
                    })
                    .unwrap_or(format!("/run/secrets/{}", opts[0]));
                ty == "mount" && t == path
            });
            if found.is_none() {
                // A bind mount of the secret file carries it as well.
                let bind = self
                    .run
                    .take("-v", |g| g.split(':').nth(1) == Some(path.as_str()));
                if bind.is_none() {
                    self.diff(format!("secrets[{i}]"), format!("{path} is not provided"));
                }
            }
        }
    }

    /// What is left of the argv: Quadlet's own flags, or a difference.
    fn unaccounted_flags(&mut self) {
        let quadlet = |f: &str, v: &str| {
            matches!(f, "--cidfile" | "--replace" | "--rm" | "-d" | "--cgroups")
                || (f == "--sdnotify" && v == "conmon")
                || (f == "--label"
                    && (v.starts_with("io.windlass.")
                        || v.starts_with("io.containers.autoupdate=")))
                || f == "--env-file"
                || f == "--secret"
                || f == "-v"
        };
        let left: Vec<String> = self
            .run
            .flags
            .iter()
            .filter(|(f, v, t)| !t && !quadlet(f, v))
            .map(|(f, v, _)| format!("{f} {v}"))
            .collect();
        for l in left {
            self.diff("(unit)", format!("the unit also runs with {l}"));
        }
        // Left-over mounts, secrets and env files: not from compose.
        for (f, v, t) in self.run.flags.clone() {
            if t {
                continue;
            }
            if f == "--secret" && !v.contains("type=env") {
                self.diff("secrets", format!("the unit also mounts the secret {v}"));
            }
            if f == "--env-file" {
                self.diff("env_file", format!("the unit also reads {v}"));
            }
            if f == "-v" {
                self.diff("volumes", format!("the unit also mounts {v}"));
            }
        }
    }
}

/// A network as Podman joins it: aliases, IPv4 and IPv6 address.
type NetworkGot = (BTreeSet<String>, Option<String>, Option<String>);

fn secret_env_target(s: &str) -> Option<&str> {
    let opts: Vec<&str> = s.split(',').collect();
    if !opts.contains(&"type=env") {
        return None;
    }
    opts.iter()
        .find_map(|o| o.strip_prefix("target="))
        .or(Some(opts[0]))
}

/// A compose health `test`, as the argv it runs.
fn health_argv(t: &Value) -> Vec<String> {
    match t {
        Value::Sequence(s) => {
            let w: Vec<String> = s.iter().map(|x| text(x).unwrap_or_default()).collect();
            match w.first().map(String::as_str) {
                Some("CMD") => w[1..].to_vec(),
                Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), w[1..].join(" ")],
                _ => w,
            }
        }
        other => vec![
            "/bin/sh".into(),
            "-c".into(),
            text(other).unwrap_or_default(),
        ],
    }
}

/// Podman's `--health-cmd`, as the argv it runs.
fn podman_health_argv(s: &str) -> Vec<String> {
    match serde_json::from_str::<Vec<String>>(s) {
        Ok(w) => health_argv(&Value::Sequence(w.into_iter().map(Value::String).collect())),
        Err(_) => vec!["/bin/sh".into(), "-c".into(), s.to_string()],
    }
}

/// `[ip:][host:]container[/proto]`, ranges expanded, as
/// (ip, host, container, proto) tuples.
fn parse_port(s: &str) -> Option<Vec<(String, String, String, String)>> {
    let (rest, proto) = s.rsplit_once('/').unwrap_or((s, "tcp"));
    let (ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, r) = r.split_once("]:")?;
        (ip.to_string(), r.to_string())
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            3 => (parts[0].to_string(), format!("{}:{}", parts[1], parts[2])),
            _ => (String::new(), rest.to_string()),
        }
    };
    let (host, target) = match rest.split_once(':') {
        Some((h, t)) => (h.to_string(), t.to_string()),
        None => (String::new(), rest),
    };
    port_tuples(&ip, &host, &target, proto)
}

fn port_tuples(
    ip: &str,
    host: &str,
    target: &str,
    proto: &str,
) -> Option<Vec<(String, String, String, String)>> {
    let range = |x: &str| -> Option<(u32, u32)> {
        match x.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => {
                let n = x.parse().ok()?;
                Some((n, n))
            }
        }
    };
    let (t0, t1) = range(target)?;
    let hosts = if host.is_empty() {
        None
    } else {
        Some(range(host)?)
    };
    let ip = if ip == "0.0.0.0" { "" } else { ip };
    Some(
        (0..=t1 - t0)
            .map(|d| {
                let h = match hosts {
                    Some((h0, h1)) if h1 - h0 == t1 - t0 => (h0 + d).to_string(),
                    Some((h0, h1)) => format!("{h0}-{h1}"),
                    None => String::new(),
                };
                (ip.to_string(), h, (t0 + d).to_string(), proto.to_string())
            })
            .collect(),
    )
}

/// Compose service keys compared above (the rest must be in the report).
const COMPARED: &[&str] = &[
    "image",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "ports",
    "volumes",
    "tmpfs",
    "networks",
    "network_mode",
    "container_name",
    "restart",
    "healthcheck",
    "user",
    "hostname",
    "working_dir",
    "privileged",
    "init",
    "read_only",
    "tty",
    "stdin_open",
    "shm_size",
    "cap_add",
    "cap_drop",
    "security_opt",
    "ulimits",
    "sysctls",
    "dns",
    "devices",
    "stop_signal",
    "pids_limit",
    "stop_grace_period",
    "mem_limit",
    "cpus",
    "labels",
    "extra_hosts",
    "secrets",
];

/// Keys that do not change what the container runs: the order of the
/// units (`depends_on`, checked by the import tests), the image's origin
/// (`build` with `image`, whose image is compared) and `deploy` when it
/// holds only the limits compared above.
const NOT_RUN: &[&str] = &["depends_on", "build"];

/// Whether report entry key `entry` names the difference at `key`: the
/// same key or a parent of it (`volumes[0]` of `volumes[0]:rslave`).
fn names(entry: &str, key: &str) -> bool {
    key == entry
        || key
            .strip_prefix(entry)
            .is_some_and(|r| r.starts_with(['.', '[', ':']))
}

/// One project's result.
#[derive(Default)]
struct Tally {
    services: usize,
    diffs: usize,
    unreported: Vec<String>,
}

struct Imported {
    case: String,
    dir: PathBuf,
    compose: PathBuf,
    report: serde_json::Value,
}

fn import_case(case: &Case, work: &Path, n: usize) -> Option<Imported> {
    let dir = work.join(format!("{n:02}"));
    std::fs::create_dir(&dir).unwrap();
    let fleet = dir.join("fleet");
    let report_path = dir.join("report.json");
    let o = windlass(&[
        "import",
        case.compose.to_str().unwrap(),
        "-o",
        fleet.to_str().unwrap(),
        "--report",
        report_path.to_str().unwrap(),
        "--allow-partial",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() {
        // Allowed only as a refusal that names every service and why.
        let doc: Value =
            serde_norway::from_str(&std::fs::read_to_string(&case.compose).unwrap()).unwrap();
        assert_eq!(o.status.code(), Some(1), "{}: {err}", case.name);
        for (s, _) in doc["services"].as_mapping().unwrap() {
            let s = key_text(s);
            assert!(
                err.contains(&format!("service `{s}`: ")),
                "{}: the failure does not name service {s}: {err}",
                case.name
            );
        }
        eprintln!("{}: import refused, naming each service", case.name);
        return None;
    }
    run(&["validate", fleet.to_str().unwrap()]);
    run(&[
        "generate",
        fleet.to_str().unwrap(),
        "-o",
        dir.join("out").to_str().unwrap(),
        "--target",
        "quadlet,systemd",
    ]);
    let report = serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    Some(Imported {
        case: case.name.clone(),
        dir,
        compose: case.compose.clone(),
        report,
    })
}

fn check_oracles(imp: &Imported) {
    let read = |f: &str| std::fs::read_to_string(imp.dir.join(f)).unwrap();
    let case = &imp.case;
    let dryrun_err: Vec<String> = read("dryrun.err")
        .lines()
        .filter(|l| !l.contains("Loading source unit file"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        read("dryrun.rc").trim(),
        "0",
        "{case}: quadlet -dryrun failed: {dryrun_err:?}"
    );
    assert!(
        dryrun_err.is_empty(),
        "{case}: quadlet complained: {dryrun_err:?}"
    );
    assert_eq!(
        read("verify.rc").trim(),
        "0",
        "{case}: systemd-analyze verify failed: {}",
        read("verify.err")
    );
    assert!(
        read("verify.err").trim().is_empty(),
        "{case}: systemd-analyze verify warned: {}",
        read("verify.err")
    );
}

/// The compose project as compose reads it: merge keys, `extends`, then
/// interpolation with the project's `.env`; and its project name.
fn compose_as_compose(compose: &Path) -> (Value, BTreeMap<String, String>, String) {
    let dir = std::path::absolute(compose)
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    // With the override file compose reads beside it (docker-zulip has
    // one), layered as `-f compose.yml -f override` is.
    let mut doc = match windlass::import::files::default_override(compose) {
        Some(o) => {
            let loaded = windlass::import::files::load(&[compose.to_path_buf(), o], None)
                .unwrap_or_else(|e| panic!("{}: {e}", compose.display()));
            assert!(loaded.includes.is_empty(), "{}: include", compose.display());
            loaded.doc
        }
        None => {
            let mut doc: Value =
                serde_norway::from_str(&std::fs::read_to_string(compose).unwrap()).unwrap();
            windlass::import::resolve_merges(&mut doc).unwrap();
            windlass::import::extends::resolve(&mut doc, &dir).unwrap();
            doc
        }
    };
    let vars = match std::fs::read_to_string(dir.join(".env")) {
        Ok(t) => windlass::import::interpolate::parse_env_file(&t).unwrap(),
        Err(_) => BTreeMap::new(),
    };
    interpolate_all(&mut doc, &vars).unwrap_or_else(|e| panic!("{}: {e}", compose.display()));
    let project = vars
        .get("COMPOSE_PROJECT_NAME")
        .cloned()
        .or_else(|| doc.get("name").and_then(text))
        .unwrap_or_else(|| dir.file_name().unwrap().to_string_lossy().into_owned());
    let project: String = project
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    (doc, vars, project)
}

fn round_trip(imp: &Imported) -> Tally {
    let case = &imp.case;
    let dump =
        String::from_utf8_lossy(&std::fs::read(imp.dir.join("dump.txt")).unwrap()).into_owned();
    let exec = exec_lines(&dump);
    let report = &imp.report;
    let compose_dir = std::path::absolute(&imp.compose)
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let (doc, vars, project) = compose_as_compose(&imp.compose);
    let mut tally = Tally::default();
    let entries = report["entries"].as_array().unwrap();
    let named = |service: Option<&str>, key: &str| {
        entries.iter().any(|e| {
            e["service"].as_str() == service && names(e["key"].as_str().unwrap_or(""), key)
        })
    };
    if report["project"].as_str() != Some(project.as_str()) {
        tally.diffs += 1;
        if !named(None, "name") {
            tally.unreported.push(format!(
                "project name {project} is {} in the fleet",
                report["project"]
            ));
        }
    }
    for s in report["services"].as_array().unwrap() {
        let name = s["service"].as_str().unwrap();
        let Some(app) = s["app"].as_str() else {
            // Not imported: the report must say why.
            assert!(
                entries.iter().any(|e| e["service"] == name),
                "{case}: service {name} is not imported and the report does not say why"
            );
            continue;
        };
        let argv = exec
            .get(&format!("{app}.service"))
            .unwrap_or_else(|| panic!("{case}: no ExecStart for {app}"));
        let unit = std::fs::read_to_string(imp.dir.join(format!("gen/{app}.service"))).unwrap();
        let svc = doc["services"][name].as_mapping().unwrap();
        let mut cmp = Cmp {
            project: &project,
            compose_dir: &compose_dir,
            top: &doc,
            service: name,
            svc,
            vars: &vars,
            run: Run::parse(argv),
            unit: service_settings(&unit),
            diffs: Vec::new(),
        };
        cmp.compare();
        // Keys not compared: each named in the report, or inert.
        for (k, _) in svc {
            let k = key_text(k);
            let v = &svc[k.as_str()];
            let empty = v.is_null() || v.as_sequence().is_some_and(|s| s.is_empty());
            if COMPARED.contains(&k.as_str())
                || NOT_RUN.contains(&k.as_str())
                || k.starts_with("x-")
                || empty
            {
                continue;
            }
            if k == "deploy" {
                for leaf in leaves("deploy", v) {
                    let one = leaf == "deploy.replicas"
                        && v.get("replicas").and_then(text).as_deref() == Some("1");
                    if !one
                        && !matches!(
                            leaf.as_str(),
                            "deploy.resources.limits.memory" | "deploy.resources.limits.cpus"
                        )
                    {
                        cmp.diffs.push(Diff {
                            key: leaf,
                            alt: None,
                            what: "not compared by this test".into(),
                        });
                    }
                }
                continue;
            }
            cmp.diffs.push(Diff {
                key: k.clone(),
                alt: None,
                what: "not compared by this test".into(),
            });
        }
        tally.services += 1;
        tally.diffs += cmp.diffs.len();
        for d in cmp.diffs {
            if !named(Some(name), &d.key) && !d.alt.as_ref().is_some_and(|a| named(Some(name), a)) {
                tally
                    .unreported
                    .push(format!("{name}: {}: {}", d.key, d.what));
            }
        }
    }
    tally
}

/// The paths of the scalars (and lists) inside `v`.
fn leaves(prefix: &str, v: &Value) -> Vec<String> {
    match v {
        Value::Mapping(m) if !m.is_empty() => m
            .iter()
            .flat_map(|(k, x)| leaves(&format!("{prefix}.{}", key_text(k)), x))
            .collect(),
        _ => vec![prefix.to_string()],
    }
}

#[test]
fn every_imported_compose_project_is_accepted_by_quadlet_and_systemd_and_every_difference_is_reported()
 {
    if !common::oracles_enabled("import round trip") {
        return;
    }
    let cases = corpus();
    assert!(cases.len() >= 10);
    let work = tempfile::tempdir().unwrap();
    let imported: Vec<Imported> = cases
        .iter()
        .enumerate()
        .filter_map(|(n, c)| import_case(c, work.path(), n))
        .collect();
    let o = common::oracle(&[(work.path(), "/w")], &["bash", "-c", SCRIPT]);
    assert!(
        o.status.success(),
        "oracle script failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut summary = String::new();
    let mut silent = Vec::new();
    for imp in &imported {
        check_oracles(imp);
        let t = round_trip(imp);
        let _ = writeln!(
            summary,
            "{:<48} {:>3} services {:>4} differences {:>3} unreported",
            imp.case,
            t.services,
            t.diffs,
            t.unreported.len()
        );
        assert!(t.services > 0, "{}: nothing was checked", imp.case);
        silent.extend(
            t.unreported
                .into_iter()
                .map(|u| format!("{}: {u}", imp.case)),
        );
    }
    eprintln!("{summary}");
    assert!(
        silent.is_empty(),
        "{} difference(s) the import report does not name:\n{}",
        silent.len(),
        silent.join("\n")
    );
}
