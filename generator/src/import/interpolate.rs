//! Compose variable interpolation (`$VAR`, `${VAR}`, `${VAR:-default}`,
//! `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`,
//! `${VAR+alt}`, `$$`), `.env` files, and the rule that decides which
//! values are secret.
//!
//! Interpolation runs over the raw YAML before any value is read, as the
//! compose specification says (and as `docker compose config` does by
//! default). Every substitution is recorded with its place, so the report
//! can name each variable that is unset and each value that was withheld.
//! This module must never let a secret value out: a withheld variable stays
//! in its literal `${VAR}` form here, for the mapper to turn into a podman
//! secret reference or to leave out.

use std::collections::{BTreeMap, BTreeSet};

use serde_norway::Value;

/// Where a variable's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// The `.env` file beside the compose file, or `--env-file`.
    EnvFile,
    /// The process environment of `windlass import` (with `--process-env`).
    Environment,
    /// A default written in the compose file (`${VAR:-default}`).
    Default,
}

/// What happened to one `${…}` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Replaced by its value.
    Resolved(Source),
    /// Kept literally: the variable is unset and has no default (compose
    /// would put an empty string and warn).
    Unset,
    /// Kept literally, set or not: the value is secret (see
    /// [`SecretRule`]), so it is never substituted.
    Withheld,
}

/// One reference to a variable inside one YAML string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Substitution {
    pub var: String,
    pub outcome: Outcome,
}

/// Variables available for interpolation, with their source.
#[derive(Debug, Default, Clone)]
pub struct Vars {
    pub env_file: BTreeMap<String, String>,
    pub environment: BTreeMap<String, String>,
}

impl Vars {
    /// The process environment wins over the env file, as in compose.
    pub fn get(&self, name: &str) -> Option<(&str, Source)> {
        if let Some(v) = self.environment.get(name) {
            return Some((v, Source::Environment));
        }
        self.env_file
            .get(name)
            .map(|v| (v.as_str(), Source::EnvFile))
    }
}

/// Which values are secret. A value is never inlined into a manifest when
/// the variable is secret or when the place it would go is secret:
///
/// * a variable whose name, split at `_`, has a word PASSWORD, PASSWD, PASS,
///   PASSPHRASE, SECRET, TOKEN, KEY, APIKEY, PRIVATE, CREDENTIAL(S), AUTH,
///   SALT, COOKIE or DSN, or contains PASSWORD, SECRET or TOKEN anywhere —
///   unless it ends in `_FILE` (the convention for a *path* to a secret);
/// * a variable named by a top-level `secrets.<name>.environment`;
/// * an `environment` entry whose own name matches the same rule.
#[derive(Debug, Default, Clone)]
pub struct SecretRule {
    /// Variables that feed `secrets:` definitions.
    pub secret_vars: BTreeSet<String>,
}

const SECRET_WORDS: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "PASS",
    "PASSPHRASE",
    "SECRET",
    "SECRETS",
    "TOKEN",
    "TOKENS",
    "KEY",
    "KEYS",
    "APIKEY",
    "PRIVATE",
    "CREDENTIAL",
    "CREDENTIALS",
    "AUTH",
    "SALT",
    "COOKIE",
    "DSN",
];

/// Whether a variable or environment name looks like it holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    if upper.ends_with("_FILE") {
        return false;
    }
    ["PASSWORD", "SECRET", "TOKEN"]
        .iter()
        .any(|w| upper.contains(w))
        || upper.split('_').any(|w| SECRET_WORDS.contains(&w))
}

impl SecretRule {
    pub fn var_is_secret(&self, var: &str) -> bool {
        self.secret_vars.contains(var) || is_secret_name(var)
    }
}

/// How interpolation is done for this import.
pub struct Interpolator<'a> {
    pub vars: &'a Vars,
    pub rule: &'a SecretRule,
}

/// An interpolation error (`${VAR:?message}` with VAR unset, or bad syntax).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct InterpolationError {
    pub path: String,
    pub message: String,
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl Interpolator<'_> {
    /// Interpolates one string. `dest_secret` says whether the place the
    /// string goes to is secret itself (an environment entry named like a
    /// secret): then nothing is resolved into it.
    pub fn string(
        &self,
        s: &str,
        dest_secret: bool,
        subs: &mut Vec<Substitution>,
    ) -> Result<String, String> {
        let chars: Vec<char> = s.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c != '$' {
                out.push(c);
                i += 1;
                continue;
            }
            match chars.get(i + 1) {
                Some('$') => {
                    out.push('$');
                    i += 2;
                }
                Some('{') => {
                    // Find the matching `}`, allowing nested `${…}` in defaults.
                    let mut depth = 0;
                    let mut j = i + 1;
                    let mut end = None;
                    while j < chars.len() {
                        match chars[j] {
                            '{' => depth += 1,
                            '}' => {
                                depth -= 1;
                                if depth == 0 {
                                    end = Some(j);
                                    break;
                                }
                            }
                            _ => {}
                        }
                        j += 1;
                    }
                    let Some(end) = end else {
                        return Err(format!("unclosed `${{` in {s:?}"));
                    };
                    let raw: String = chars[i..=end].iter().collect();
                    let body: String = chars[i + 2..end].iter().collect();
                    out.push_str(&self.braced(&raw, &body, dest_secret, subs)?);
                    i = end + 1;
                }
                Some(&n) if is_name_start(n) => {
                    let mut j = i + 1;
                    while j < chars.len() && is_name_char(chars[j]) {
                        j += 1;
                    }
                    let name: String = chars[i + 1..j].iter().collect();
                    let raw: String = chars[i..j].iter().collect();
                    out.push_str(&self.resolve(&raw, &name, None, dest_secret, subs)?);
                    i = j;
                }
                _ => {
                    // A `$` not followed by a name is kept, as compose does.
                    out.push('$');
                    i += 1;
                }
            }
        }
        Ok(out)
    }

    fn braced(
        &self,
        raw: &str,
        body: &str,
        dest_secret: bool,
        subs: &mut Vec<Substitution>,
    ) -> Result<String, String> {
        let name_len = body.chars().take_while(|&c| is_name_char(c)).count();
        let name = &body[..name_len];
        if name.is_empty() || !name.starts_with(is_name_start) {
            return Err(format!("invalid interpolation format {raw:?}"));
        }
        let rest = &body[name_len..];
        let op = if rest.is_empty() {
            None
        } else {
            let ops = [":-", ":?", ":+", "-", "?", "+"];
            let op = ops
                .iter()
                .find(|o| rest.starts_with(**o))
                .ok_or_else(|| format!("invalid interpolation format {raw:?}"))?;
            Some((*op, &rest[op.len()..]))
        };
        self.resolve(raw, name, op, dest_secret, subs)
    }

    fn resolve(
        &self,
        raw: &str,
        name: &str,
        op: Option<(&str, &str)>,
        dest_secret: bool,
        subs: &mut Vec<Substitution>,
    ) -> Result<String, String> {
        let record = |subs: &mut Vec<Substitution>, outcome: Outcome| {
            subs.push(Substitution {
                var: name.to_string(),
                outcome,
            })
        };
        // A secret is never substituted, whether it is set or not (and an
        // unset one is no error even with `:?`: its value would not be
        // used anyway).
        if dest_secret || self.rule.var_is_secret(name) {
            record(subs, Outcome::Withheld);
            return Ok(raw.to_string());
        }
        let value = self.vars.get(name);
        let (set, nonempty) = match value {
            Some((v, _)) => (true, !v.is_empty()),
            None => (false, false),
        };
        let resolved: Option<(String, Source)> = match op {
            None => value.map(|(v, s)| (v.to_string(), s)),
            Some((o @ (":-" | "-"), def)) => {
                let use_value = if o == ":-" { nonempty } else { set };
                if use_value {
                    value.map(|(v, s)| (v.to_string(), s))
                } else {
                    // The default may itself refer to variables.
                    Some((self.string(def, dest_secret, subs)?, Source::Default))
                }
            }
            Some((o @ (":?" | "?"), msg)) => {
                let ok = if o == ":?" { nonempty } else { set };
                if !ok {
                    return Err(format!(
                        "required variable {name} is missing a value: {}",
                        if msg.is_empty() { "(no message)" } else { msg }
                    ));
                }
                value.map(|(v, s)| (v.to_string(), s))
            }
            Some((o, alt)) => {
                let use_alt = if o == ":+" { nonempty } else { set };
                if use_alt {
                    Some((self.string(alt, dest_secret, subs)?, Source::Default))
                } else {
                    Some((String::new(), Source::Default))
                }
            }
        };
        match resolved {
            None => {
                record(subs, Outcome::Unset);
                Ok(raw.to_string())
            }
            Some((v, source)) => {
                record(subs, Outcome::Resolved(source));
                Ok(v)
            }
        }
    }
}

/// Every interpolated string of the document, by its YAML path.
pub type Substitutions = BTreeMap<String, Vec<Substitution>>;

/// Interpolates every string value (never a key) of `doc` in place, then
/// casts the strings at the places compose types as numbers or booleans
/// (see [`CASTS`]).
pub fn interpolate_document(
    doc: &mut Value,
    interp: &Interpolator<'_>,
) -> Result<Substitutions, InterpolationError> {
    let mut all = Substitutions::new();
    walk(doc, String::new(), &mut Vec::new(), interp, &mut all)?;
    Ok(all)
}

/// The type compose gives a value after interpolation.
#[derive(Debug, Clone, Copy)]
enum Cast {
    Int,
    Float,
    Bool,
}

/// Where compose casts a string after interpolating it: compose-go's
/// `interpolateTypeCastMapping`, as dotted paths with `*` for any key or
/// list item and `[]` for any list item. Not `configs[].mode`/`secrets[].mode`: compose
/// reads a quoted `"0440"` there as decimal, but the YAML parser here
/// cannot tell it from a plain `0440` (octal to compose), so a string mode
/// stays octal text.
const CASTS: &[(&str, Cast)] = &[
    ("services.*.cpu_count", Cast::Int),
    ("services.*.cpu_percent", Cast::Float),
    ("services.*.cpu_period", Cast::Int),
    ("services.*.cpu_quota", Cast::Int),
    ("services.*.cpu_rt_period", Cast::Int),
    ("services.*.cpu_rt_runtime", Cast::Int),
    ("services.*.cpus", Cast::Float),
    ("services.*.cpu_shares", Cast::Int),
    ("services.*.init", Cast::Bool),
    ("services.*.deploy.replicas", Cast::Int),
    ("services.*.deploy.update_config.parallelism", Cast::Int),
    (
        "services.*.deploy.update_config.max_failure_ratio",
        Cast::Float,
    ),
    ("services.*.deploy.rollback_config.parallelism", Cast::Int),
    (
        "services.*.deploy.rollback_config.max_failure_ratio",
        Cast::Float,
    ),
    ("services.*.deploy.restart_policy.max_attempts", Cast::Int),
    (
        "services.*.deploy.placement.max_replicas_per_node",
        Cast::Int,
    ),
    ("services.*.healthcheck.retries", Cast::Int),
    ("services.*.healthcheck.disable", Cast::Bool),
    ("services.*.oom_kill_disable", Cast::Bool),
    ("services.*.oom_score_adj", Cast::Int),
    ("services.*.pids_limit", Cast::Int),
    ("services.*.ports.[].target", Cast::Int),
    ("services.*.privileged", Cast::Bool),
    ("services.*.read_only", Cast::Bool),
    ("services.*.scale", Cast::Int),
    ("services.*.stdin_open", Cast::Bool),
    ("services.*.tty", Cast::Bool),
    ("services.*.ulimits.*", Cast::Int),
    ("services.*.ulimits.*.hard", Cast::Int),
    ("services.*.ulimits.*.soft", Cast::Int),
    ("services.*.volumes.[].read_only", Cast::Bool),
    ("services.*.volumes.[].volume.nocopy", Cast::Bool),
    ("networks.*.external", Cast::Bool),
    ("networks.*.internal", Cast::Bool),
    ("networks.*.attachable", Cast::Bool),
    ("networks.*.enable_ipv6", Cast::Bool),
    ("volumes.*.external", Cast::Bool),
    ("secrets.*.external", Cast::Bool),
    ("configs.*.external", Cast::Bool),
];

/// The cast for the value at `at` (keys, `[]` for list items), if any.
fn cast_at(at: &[String]) -> Option<Cast> {
    CASTS.iter().find_map(|(pattern, cast)| {
        (pattern.split('.').count() == at.len()
            && pattern
                .split('.')
                .zip(at)
                .all(|(p, part)| p == "*" || p == part))
        .then_some(*cast)
    })
}

impl Cast {
    /// The typed value, as compose-go reads it (Go's `strconv.Atoi`,
    /// `ParseFloat`, and YAML 1.1 booleans).
    fn apply(self, s: &str) -> Result<Value, String> {
        match self {
            Cast::Int => s
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| format!("{s:?} is not an integer, which compose requires here")),
            Cast::Float => match s.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Value::from(f)),
                _ => Err(format!(
                    "{s:?} is not a number, which compose requires here"
                )),
            },
            Cast::Bool => match s.to_ascii_lowercase().as_str() {
                "true" | "y" | "yes" | "on" => Ok(Value::Bool(true)),
                "false" | "n" | "no" | "off" => Ok(Value::Bool(false)),
                _ => Err(format!(
                    "{s:?} is not a boolean (true or false), which compose requires here"
                )),
            },
        }
    }
}

/// Whether the string at `path` is an environment entry named like a secret.
fn env_dest_is_secret(path: &str, s: &str) -> bool {
    // services.<svc>.environment.<KEY>  or  services.<svc>.environment[<i>]
    let mut parts = path.splitn(3, '.');
    let (Some("services"), Some(_), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if let Some(key) = rest.strip_prefix("environment.") {
        return is_secret_name(key);
    }
    if rest.starts_with("environment[") {
        let key = s.split('=').next().unwrap_or_default();
        return is_secret_name(key);
    }
    false
}

fn key_text(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => "?".to_string(),
    }
}

/// `path` is the report's form of the place (`services.web.ports[0]`),
/// `at` the same as a list of keys with `[]` for list items.
fn walk(
    v: &mut Value,
    path: String,
    at: &mut Vec<String>,
    interp: &Interpolator<'_>,
    all: &mut Substitutions,
) -> Result<(), InterpolationError> {
    match v {
        Value::String(s) => {
            let mut subs = Vec::new();
            if s.contains('$') {
                let dest_secret = env_dest_is_secret(&path, s);
                *s = interp
                    .string(s, dest_secret, &mut subs)
                    .map_err(|message| InterpolationError {
                        path: path.clone(),
                        message,
                    })?;
            }
            // A variable kept literally is reported with its place; the
            // value stays a string for the mapper to refuse.
            let resolved = subs
                .iter()
                .all(|s| matches!(s.outcome, Outcome::Resolved(_)));
            if resolved && let Some(cast) = cast_at(at) {
                let typed = cast.apply(s).map_err(|message| {
                    let from: Vec<String> = subs.iter().map(|s| format!("${}", s.var)).collect();
                    InterpolationError {
                        path: path.clone(),
                        message: if from.is_empty() {
                            message
                        } else {
                            format!("{message} (interpolated from {})", from.join(", "))
                        },
                    }
                })?;
                *v = typed;
            }
            if !subs.is_empty() {
                all.insert(path, subs);
            }
        }
        Value::Sequence(seq) => {
            for (i, item) in seq.iter_mut().enumerate() {
                at.push("[]".into());
                walk(item, format!("{path}[{i}]"), at, interp, all)?;
                at.pop();
            }
        }
        Value::Mapping(map) => {
            for (k, item) in map.iter_mut() {
                let key = key_text(k);
                let p = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                at.push(key);
                walk(item, p, at, interp, all)?;
                at.pop();
            }
        }
        Value::Tagged(t) => walk(&mut t.value, path, at, interp, all)?,
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

/// Parses a compose `.env` file: `KEY=value`, optional `export `, `#`
/// comments, single quotes (literal), double quotes (escapes `\n`, `\t`,
/// `\\`, `\"`, and may span lines), unquoted values (trimmed, ` #` starts a
/// comment). Values may refer to variables defined earlier in the file.
pub fn parse_env_file(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut line = 1;
    while i < chars.len() {
        // Skip blank space and comment lines.
        while i < chars.len() && (chars[i] == ' ' || chars[i] == '\t' || chars[i] == '\r') {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        if chars[i] == '\n' {
            line += 1;
            i += 1;
            continue;
        }
        if chars[i] == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i] != '=' && chars[i] != '\n' {
            i += 1;
        }
        let mut key: String = chars[start..i].iter().collect();
        key = key.trim().to_string();
        if let Some(k) = key.strip_prefix("export ") {
            key = k.trim().to_string();
        }
        if i >= chars.len() || chars[i] != '=' {
            return Err(format!("line {line}: expected KEY=VALUE, found {key:?}"));
        }
        if key.is_empty() || !key.starts_with(is_name_start) || !key.chars().all(is_name_char) {
            return Err(format!("line {line}: {key:?} is not a variable name"));
        }
        i += 1; // '='
        while i < chars.len() && (chars[i] == ' ' || chars[i] == '\t') {
            i += 1;
        }
        let interp_vars = Vars {
            env_file: vars.clone(),
            environment: BTreeMap::new(),
        };
        let rule = SecretRule::default();
        let interp = Interpolator {
            vars: &interp_vars,
            rule: &rule,
        };
        let value = match chars.get(i) {
            Some('\'') => {
                i += 1;
                let s = i;
                while i < chars.len() && chars[i] != '\'' {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(format!("line {line}: unclosed single quote"));
                }
                let v: String = chars[s..i].iter().collect();
                i += 1;
                v
            }
            Some('"') => {
                i += 1;
                let mut v = String::new();
                loop {
                    match chars.get(i) {
                        None => return Err(format!("line {line}: unclosed double quote")),
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => {
                            match chars.get(i + 1) {
                                Some('n') => v.push('\n'),
                                Some('t') => v.push('\t'),
                                Some('r') => v.push('\r'),
                                Some('\\') => v.push('\\'),
                                Some('"') => v.push('"'),
                                Some('$') => v.push_str("$$"),
                                Some(&o) => {
                                    v.push('\\');
                                    v.push(o);
                                }
                                None => return Err(format!("line {line}: unclosed double quote")),
                            }
                            i += 2;
                        }
                        Some(&c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            v.push(c);
                            i += 1;
                        }
                    }
                }
                interp
                    .string(&v, false, &mut Vec::new())
                    .map_err(|e| format!("line {line}: {e}"))?
            }
            _ => {
                let s = i;
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                let raw: String = chars[s..i].iter().collect();
                let mut v = raw.as_str();
                if let Some(pos) = v.find(" #") {
                    v = &v[..pos];
                }
                let v = v.trim_end_matches(['\r', ' ', '\t']);
                interp
                    .string(v, false, &mut Vec::new())
                    .map_err(|e| format!("line {line}: {e}"))?
            }
        };
        // Anything after a quoted value up to the end of line must be a comment.
        while i < chars.len() && (chars[i] == ' ' || chars[i] == '\t' || chars[i] == '\r') {
            i += 1;
        }
        if i < chars.len() && chars[i] == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        }
        if i < chars.len() && chars[i] != '\n' {
            return Err(format!(
                "line {line}: unexpected text after the value of {key}"
            ));
        }
        vars.insert(key, value);
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interp(env: &[(&str, &str)], s: &str) -> (String, Vec<Substitution>) {
        let vars = Vars {
            env_file: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            environment: BTreeMap::new(),
        };
        let rule = SecretRule::default();
        let i = Interpolator {
            vars: &vars,
            rule: &rule,
        };
        let mut subs = Vec::new();
        let out = i.string(s, false, &mut subs).unwrap();
        (out, subs)
    }

    #[test]
    fn forms_follow_the_compose_specification() {
        let env = [("A", "x"), ("E", "")];
        assert_eq!(interp(&env, "${A}").0, "x");
        assert_eq!(interp(&env, "$A-y").0, "x-y");
        assert_eq!(interp(&env, "${B:-def}").0, "def");
        assert_eq!(interp(&env, "${E:-def}").0, "def");
        assert_eq!(interp(&env, "${E-def}").0, "");
        assert_eq!(interp(&env, "${B-def}").0, "def");
        assert_eq!(interp(&env, "${A:+alt}").0, "alt");
        assert_eq!(interp(&env, "${B:+alt}").0, "");
        assert_eq!(interp(&env, "${B:-${A}}").0, "x");
        assert_eq!(
            interp(&env, "$$A and $${A} cost $5").0,
            "$A and ${A} cost $5"
        );
        assert_eq!(interp(&env, "${B}").0, "${B}");
    }

    #[test]
    fn unset_variables_stay_literal_and_are_recorded() {
        let (out, subs) = interp(&[("A", "x")], "a ${B} $$ $A");
        assert_eq!(out, "a ${B} $ x");
        assert_eq!(subs[0].outcome, Outcome::Unset);
        assert_eq!(subs[1].outcome, Outcome::Resolved(Source::EnvFile));
    }

    #[test]
    fn required_variables_fail() {
        let vars = Vars::default();
        let rule = SecretRule::default();
        let i = Interpolator {
            vars: &vars,
            rule: &rule,
        };
        assert!(i.string("${X:?set X}", false, &mut Vec::new()).is_err());
        // A secret is withheld, set or not, so it is never required.
        let mut subs = Vec::new();
        assert_eq!(
            i.string("${DB_PASSWORD:?set it}", false, &mut subs)
                .unwrap(),
            "${DB_PASSWORD:?set it}"
        );
        assert_eq!(subs[0].outcome, Outcome::Withheld);
        assert!(i.string("${X", false, &mut Vec::new()).is_err());
    }

    #[test]
    fn secret_variables_are_withheld() {
        let (out, subs) = interp(&[("DB_PASSWORD", "hunter2")], "p=${DB_PASSWORD}");
        assert_eq!(out, "p=${DB_PASSWORD}");
        assert_eq!(subs[0].outcome, Outcome::Withheld);
        // Unset, or with a default: withheld all the same.
        for s in ["${API_TOKEN}", "${API_TOKEN:-changeme}"] {
            let (out, subs) = interp(&[], s);
            assert_eq!(out, s);
            assert_eq!(subs[0].outcome, Outcome::Withheld);
        }
        assert!(is_secret_name("API_KEY"));
        assert!(is_secret_name("GITHUB_TOKEN"));
        assert!(is_secret_name("MYSQL_ROOT_PASSWORD"));
        assert!(!is_secret_name("MYSQL_ROOT_PASSWORD_FILE"));
        assert!(!is_secret_name("KEYCLOAK_URL"));
        assert!(!is_secret_name("POSTGRES_DB"));
    }

    #[test]
    fn env_files_parse_like_compose() {
        let text = "# comment\nA=1\nexport B = two words # c\nC='lit $A'\nD=\"q\\n$A\"\nE=\nF=\"multi\nline\"\nG=${A}x\n";
        let v = parse_env_file(text).unwrap();
        assert_eq!(v["A"], "1");
        assert_eq!(v["B"], "two words");
        assert_eq!(v["C"], "lit $A");
        assert_eq!(v["D"], "q\n1");
        assert_eq!(v["E"], "");
        assert_eq!(v["F"], "multi\nline");
        assert_eq!(v["G"], "1x");
        assert!(parse_env_file("NOEQUALS\n").is_err());
    }
}
