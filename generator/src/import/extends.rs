//! `extends` within one compose file, resolved as compose-go resolves it
//! (`loader/extends.go`, `override/merge.go`, `override/uncity.go`): the
//! base service (itself resolved first) is merged with the extending one,
//! whose values win. Mappings merge key by key; sequences are appended;
//! `command`, `entrypoint` and `healthcheck.test` are replaced;
//! `environment`, `labels`, `env_file`, `dns`, `sysctls`, `tmpfs`, … are
//! merged as `KEY=value` lists; `networks` and `depends_on` as maps; and
//! then every such list keeps one entry per key (a port, a mount target,
//! a variable name), the later one in its place.
//!
//! `extends` naming another file (`file:`, relative to the file that
//! names it) takes the service from that file (its own `extends`
//! resolved, its relative paths made absolute against its directory);
//! nothing else of that file is read, as in compose.

use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

/// How many files deep `extends: {file: …}` is followed.
const MAX_FILES: usize = 16;

fn key_text(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => "?".to_string(),
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => serde_norway::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// Where `extends` takes the base from: (the other file, if any, the
/// service).
fn base_of(service: &Mapping) -> Option<Result<(Option<String>, String), String>> {
    match service.get("extends")? {
        Value::String(s) => Some(Ok((None, s.clone()))),
        Value::Mapping(m) => {
            let file = m.get("file").and_then(Value::as_str).map(str::to_string);
            Some(
                m.get("service")
                    .and_then(Value::as_str)
                    .map(|s| (file, s.to_string()))
                    .ok_or_else(|| "`extends` needs `service`".to_string()),
            )
        }
        _ => Some(Err("`extends` must be a service name or a map".into())),
    }
}

/// Resolves every `extends` of `doc.services` in place; `dir` is the
/// directory of the file `doc` was read from. Errors (a missing base or
/// file, a cycle, values that cannot merge) name the service. Returns the
/// services that were extended, each with its base (`file:service` for
/// another file's).
pub fn resolve(doc: &mut Value, dir: &Path) -> Result<Vec<(String, String)>, String> {
    resolve_in(doc, dir, 0)
}

fn resolve_in(doc: &mut Value, dir: &Path, depth: usize) -> Result<Vec<(String, String)>, String> {
    let Some(Value::Mapping(services)) = doc.get_mut("services") else {
        return Ok(Vec::new());
    };
    let names: Vec<String> = services.keys().map(key_text).collect();
    let mut done = Vec::new();
    for name in names {
        resolve_one(services, dir, depth, &name, &mut Vec::new(), &mut done)?;
    }
    Ok(done)
}

/// The service `name` of the compose file `path`, its own `extends`
/// resolved and its relative paths made absolute.
fn service_from_file(path: &Path, name: &str, depth: usize) -> Result<Mapping, String> {
    if depth >= MAX_FILES {
        return Err(format!(
            "`extends` follows more than {MAX_FILES} files (a cycle?)"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut doc: Value =
        serde_norway::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    super::resolve_merges(&mut doc).map_err(|e| format!("{}: merge keys: {e}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    resolve_in(&mut doc, &dir, depth + 1).map_err(|e| format!("{}: {e}", path.display()))?;
    let Some(Value::Mapping(mut service)) = doc.get("services").and_then(|s| s.get(name)).cloned()
    else {
        return Err(format!(
            "{}: there is no service `{name}` in it",
            path.display()
        ));
    };
    absolute_paths(&mut service, &dir);
    Ok(service)
}

fn absolute(p: &str, dir: &Path) -> String {
    if p.starts_with('/') || p.starts_with('~') || p.contains("://") || p.starts_with("git@") {
        return p.to_string();
    }
    super::service::normalize(&dir.join(p))
        .to_string_lossy()
        .into_owned()
}

/// Makes the relative paths of a service read from another file absolute
/// against that file's directory, as compose does: `env_file`, `build`'s
/// context, bind mount sources, secrets are top-level and not inherited.
pub(crate) fn absolute_paths(service: &mut Mapping, dir: &Path) {
    match service.get_mut("env_file") {
        Some(Value::String(s)) => *s = absolute(s, dir),
        Some(Value::Sequence(items)) => {
            for item in items {
                match item {
                    Value::String(s) => *s = absolute(s, dir),
                    Value::Mapping(m) => {
                        if let Some(Value::String(p)) = m.get_mut("path") {
                            *p = absolute(p, dir);
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    match service.get_mut("build") {
        Some(Value::String(s)) => *s = absolute(s, dir),
        Some(Value::Mapping(m)) => {
            let c = m.get("context").and_then(Value::as_str).unwrap_or(".");
            let c = absolute(c, dir);
            m.insert("context".into(), Value::String(c));
        }
        _ => {}
    }
    if let Some(Value::Sequence(items)) = service.get_mut("volumes") {
        for item in items {
            match item {
                Value::String(s) if s.starts_with('.') => {
                    let (src, rest) = s.split_once(':').unwrap_or((s.as_str(), ""));
                    let src = absolute(src, dir);
                    *s = if rest.is_empty() {
                        src
                    } else {
                        format!("{src}:{rest}")
                    };
                }
                Value::Mapping(m) => {
                    if m.get("type").and_then(Value::as_str) == Some("bind")
                        && let Some(Value::String(src)) = m.get_mut("source")
                    {
                        *src = absolute(src, dir);
                    }
                }
                _ => {}
            }
        }
    }
}

fn resolve_one(
    services: &mut Mapping,
    dir: &Path,
    depth: usize,
    name: &str,
    chain: &mut Vec<String>,
    done: &mut Vec<(String, String)>,
) -> Result<(), String> {
    let Some(Value::Mapping(service)) = services.get(name) else {
        return Ok(());
    };
    let (file, base) = match base_of(service) {
        None => return Ok(()),
        Some(b) => b.map_err(|e| format!("services.{name}: {e}"))?,
    };
    let base_def = if let Some(file) = &file {
        let path: PathBuf = if Path::new(file).is_absolute() {
            PathBuf::from(file)
        } else {
            dir.join(file)
        };
        service_from_file(&path, &base, depth)
            .map_err(|e| format!("services.{name}: cannot extend `{base}`: {e}"))?
    } else {
        if chain.iter().any(|c| c == name) {
            chain.push(name.to_string());
            return Err(format!(
                "services.{name}: `extends` forms a cycle: {}",
                chain.join(" → ")
            ));
        }
        if !services.contains_key(base.as_str()) {
            return Err(format!(
                "services.{name}: cannot extend the service `{base}`: there is no such service in this file"
            ));
        }
        chain.push(name.to_string());
        resolve_one(services, dir, depth, &base, chain, done)?;
        chain.pop();
        match services.get(base.as_str()) {
            Some(Value::Mapping(m)) => m.clone(),
            Some(Value::Null) | None => Mapping::new(),
            Some(_) => return Err(format!("services.{base} must be a map")),
        }
    };
    let Some(Value::Mapping(service)) = services.get(name) else {
        return Ok(());
    };
    let mut over = service.clone();
    over.remove("extends");
    let mut base_def = base_def;
    base_def.remove("extends");
    let mut merged = merge(
        Value::Mapping(base_def),
        Value::Mapping(over),
        &mut Vec::new(),
    )
    .map_err(|e| format!("services.{name}: extending `{base}`: {e}"))?;
    unicity(&mut merged, &mut Vec::new())
        .map_err(|e| format!("services.{name}: extending `{base}`: {e}"))?;
    services.insert(Value::String(name.to_string()), merged);
    done.push((
        name.to_string(),
        match file {
            Some(f) => format!("{base}` of `{f}"),
            None => format!("{base}` of this file"),
        },
    ));
    Ok(())
}

fn matches(path: &[String], pattern: &str) -> bool {
    let parts: Vec<&str> = pattern.split('.').collect();
    parts.len() == path.len() && parts.iter().zip(path).all(|(p, k)| *p == "*" || p == k)
}

const TO_SEQUENCE: &[&str] = &[
    "annotations",
    "build.args",
    "build.additional_contexts",
    "build.labels",
    "deploy.labels",
    "dns",
    "dns_opt",
    "dns_search",
    "env_file",
    "label_file",
    "environment",
    "labels",
    "sysctls",
    "tmpfs",
];

/// compose-go's `MergeYaml` at `path` (relative to the service): `o`
/// over `e`.
fn merge(e: Value, o: Value, path: &mut Vec<String>) -> Result<Value, String> {
    let at = |p: &str| matches(path, p);
    if at("command") || at("entrypoint") || at("healthcheck.test") {
        return Ok(o);
    }
    if TO_SEQUENCE.iter().any(|p| at(p)) {
        let mut seq = to_sequence(&e);
        seq.extend(to_sequence(&o));
        return Ok(Value::Sequence(seq));
    }
    if at("extra_hosts") || at("build.extra_hosts") {
        let mut seq = to_sequence(&e);
        for v in to_sequence(&o) {
            if !seq.contains(&v) {
                seq.push(v);
            }
        }
        return Ok(Value::Sequence(seq));
    }
    if at("build") {
        let as_map = |v: Value| match v {
            Value::String(s) => {
                let mut m = Mapping::new();
                m.insert("context".into(), Value::String(s));
                Value::Mapping(m)
            }
            other => other,
        };
        return merge_mappings(as_map(e), as_map(o), path);
    }
    if at("depends_on") || at("networks") {
        let default = at("depends_on");
        return merge_mappings(to_mapping(e, default), to_mapping(o, default), path);
    }
    if at("ulimits.*") {
        return Ok(o);
    }
    if at("logging") {
        let driver = |v: &Value| v.get("driver").cloned();
        if let (Some(a), Some(b)) = (driver(&e), driver(&o))
            && a != b
        {
            return Ok(o);
        }
        return merge_mappings(e, o, path);
    }
    if o.is_null() {
        return Ok(e);
    }
    match (e, o) {
        (e @ Value::Mapping(_), o) => merge_mappings(e, o, path),
        (Value::Sequence(mut a), Value::Sequence(b)) => {
            a.extend(b);
            Ok(Value::Sequence(a))
        }
        (Value::Sequence(_), _) => Err(format!("cannot override {}", path.join("."))),
        (_, o) => Ok(o),
    }
}

type Merger = fn(Value, Value, &mut Vec<String>) -> Result<Value, String>;

fn merge_mappings(e: Value, o: Value, path: &mut Vec<String>) -> Result<Value, String> {
    merge_mappings_with(e, o, path, merge)
}

/// compose-go's `mergeMappings`, with its loader's `!reset` and
/// `!override` tags: `o`'s keys over `e`'s, each merged by `by`; an
/// `x-` key, a key `e` lacks and a `!override` value replace; a `!reset`
/// key is removed.
fn merge_mappings_with(
    e: Value,
    o: Value,
    path: &mut Vec<String>,
    by: Merger,
) -> Result<Value, String> {
    let (Value::Mapping(mut base), Value::Mapping(other)) = (e, o) else {
        return Err(format!("cannot override {}", path.join(".")));
    };
    // Keys keep their places: the earlier file's order, then new keys.
    for (k, v) in other {
        match tag_of(&v) {
            Some(Tag::Reset) => {
                base.shift_remove(&k);
                continue;
            }
            Some(Tag::Override) => {
                let Value::Tagged(t) = v else { unreachable!() };
                base.insert(k, untag(t.value));
                continue;
            }
            None => {}
        }
        let replace = key_text(&k).starts_with("x-");
        match base.get_mut(&k) {
            Some(slot) if !replace => {
                let existing = std::mem::replace(slot, Value::Null);
                path.push(key_text(&k));
                let merged = by(existing, v, path);
                path.pop();
                *slot = merged?;
            }
            Some(slot) => *slot = untag(v),
            None => {
                base.insert(k, untag(v));
            }
        }
    }
    Ok(Value::Mapping(base))
}

enum Tag {
    Reset,
    Override,
}

fn tag_of(v: &Value) -> Option<Tag> {
    match v {
        Value::Tagged(t) if t.tag == "reset" => Some(Tag::Reset),
        Value::Tagged(t) if t.tag == "override" => Some(Tag::Override),
        _ => None,
    }
}

/// A value that nothing is merged into: `!reset` entries removed,
/// `!override` values unwrapped, at any depth.
pub fn untag(v: Value) -> Value {
    match v {
        Value::Mapping(m) => Value::Mapping(
            m.into_iter()
                .filter(|(_, v)| !matches!(tag_of(v), Some(Tag::Reset)))
                .map(|(k, v)| (k, untag(v)))
                .collect(),
        ),
        Value::Sequence(s) => Value::Sequence(
            s.into_iter()
                .filter(|v| !matches!(tag_of(v), Some(Tag::Reset)))
                .map(untag)
                .collect(),
        ),
        Value::Tagged(t) if t.tag == "override" => untag(t.value),
        other => other,
    }
}

/// compose-go's `override.Merge` of two whole compose documents, `o`
/// (a later `-f` file) over `e`: services merge as `extends` merges them
/// (then one entry per port, mount target, variable, …), networks'
/// `ipam.config` by subnet, networks' and volumes' `labels` as
/// `KEY=value` lists, everything else as in [`merge`]'s default (maps key
/// by key, lists appended, scalars replaced), with `!reset`/`!override`.
pub fn merge_documents(mut e: Value, o: Value) -> Result<Value, String> {
    // As compose-go's `ResetProcessor`: the tagged places are taken out
    // of the later file (`!reset`) or kept untagged (`!override`), and
    // removed from the earlier ones' map before the merge.
    let mut tagged = Vec::new();
    let o = take_tags(untag_top(o), &mut Vec::new(), &mut tagged).unwrap_or(Value::Null);
    delete_paths(&mut e, &mut Vec::new(), &tagged);
    let mut merged = merge_document_at(e, o, &mut Vec::new())?;
    if let Some(Value::Mapping(services)) = merged.get_mut("services") {
        for (name, svc) in services.iter_mut() {
            unicity(svc, &mut Vec::new())
                .map_err(|e| format!("services.{}: {e}", key_text(name)))?;
        }
    }
    Ok(merged)
}

/// `v` without its `!reset` places (list items included) and with its
/// `!override` values untagged; each such place's path is added to
/// `tagged` (list items by index).
fn take_tags(v: Value, path: &mut Vec<String>, tagged: &mut Vec<Vec<String>>) -> Option<Value> {
    match v {
        Value::Tagged(t) if t.tag == "reset" => {
            tagged.push(path.clone());
            None
        }
        Value::Tagged(t) if t.tag == "override" => {
            tagged.push(path.clone());
            Some(untag(t.value))
        }
        Value::Mapping(m) => Some(Value::Mapping(
            m.into_iter()
                .filter_map(|(k, v)| {
                    path.push(key_text(&k));
                    let v = take_tags(v, path, tagged);
                    path.pop();
                    v.map(|v| (k, v))
                })
                .collect(),
        )),
        Value::Sequence(s) => Some(Value::Sequence(
            s.into_iter()
                .enumerate()
                .filter_map(|(i, v)| {
                    path.push(i.to_string());
                    let v = take_tags(v, path, tagged);
                    path.pop();
                    v
                })
                .collect(),
        )),
        other => Some(other),
    }
}

/// Removes the map entries at `paths` from `v` (compose-go removes none
/// from a list).
fn delete_paths(v: &mut Value, path: &mut Vec<String>, paths: &[Vec<String>]) {
    if paths.is_empty() {
        return;
    }
    match v {
        Value::Mapping(m) => {
            m.retain(|k, _| {
                path.push(key_text(k));
                let keep = !paths.contains(path);
                path.pop();
                keep
            });
            for (k, e) in m.iter_mut() {
                path.push(key_text(k));
                delete_paths(e, path, paths);
                path.pop();
            }
        }
        Value::Sequence(s) => {
            for (i, e) in s.iter_mut().enumerate() {
                path.push(i.to_string());
                delete_paths(e, path, paths);
                path.pop();
            }
        }
        _ => {}
    }
}

/// `!override` on the document itself means nothing; `!reset` on it
/// nothing either.
fn untag_top(o: Value) -> Value {
    match o {
        Value::Tagged(t) => t.value,
        other => other,
    }
}

fn merge_document_at(e: Value, o: Value, path: &mut Vec<String>) -> Result<Value, String> {
    let at = |p: &str| matches(path, p);
    if at("services.*") {
        let name = path[1].clone();
        return merge(e, o, &mut Vec::new()).map_err(|err| format!("services.{name}: {err}"));
    }
    if at("networks.*.labels") || at("volumes.*.labels") {
        let mut seq = to_sequence(&e);
        seq.extend(to_sequence(&o));
        return Ok(Value::Sequence(seq));
    }
    if at("networks.*.ipam.config") {
        return ipam_config(e, o, path);
    }
    if o.is_null() {
        return Ok(e);
    }
    match (e, o) {
        (e @ Value::Mapping(_), o) => merge_mappings_with(e, o, path, merge_document_at),
        (Value::Sequence(mut a), Value::Sequence(b)) => {
            a.extend(b.into_iter().map(untag));
            Ok(Value::Sequence(a))
        }
        (Value::Sequence(_), _) => Err(format!("cannot override {}", path.join("."))),
        (_, o) => Ok(untag(o)),
    }
}

/// A network's `ipam.config` entries merged by subnet, as compose-go's
/// `mergeIPAMConfig` means to: an entry of the later file with the subnet
/// of an earlier one is merged into it, one with a new subnet is added.
/// (compose-go's loop also drops an earlier subnet the later file does
/// not name, and can merge entries of different subnets; that is not
/// copied.)
fn ipam_config(e: Value, o: Value, path: &mut Vec<String>) -> Result<Value, String> {
    let (Value::Sequence(mut out), Value::Sequence(over)) = (e, untag(o)) else {
        return Err(format!("cannot override {}", path.join(".")));
    };
    let subnet = |v: &Value| v.get("subnet").cloned();
    for ov in over {
        match out.iter().position(|a| subnet(a) == subnet(&ov)) {
            Some(i) => {
                let earlier = std::mem::replace(&mut out[i], Value::Null);
                out[i] = merge_mappings_with(earlier, ov, path, merge_document_at)?;
            }
            None => out.push(ov),
        }
    }
    Ok(Value::Sequence(out))
}

/// compose-go's `convertIntoSequence`: a map becomes sorted `k=v` items
/// (`k` for a null value), a string a one-item list.
fn to_sequence(v: &Value) -> Vec<Value> {
    match v {
        Value::Mapping(m) => {
            let mut items: Vec<String> = Vec::new();
            for (k, val) in m {
                let k = key_text(k);
                match val {
                    Value::Null => items.push(k),
                    Value::Sequence(s) => {
                        for x in s {
                            items.push(format!("{k}={}", scalar_text(x)));
                        }
                    }
                    other => items.push(format!("{k}={}", scalar_text(other))),
                }
            }
            items.sort();
            items.into_iter().map(Value::String).collect()
        }
        Value::Sequence(s) => s.clone(),
        Value::String(s) => vec![Value::String(s.clone())],
        _ => Vec::new(),
    }
}

/// compose-go's `convertIntoMapping`: a list of names becomes a map (for
/// `depends_on`, each with compose's defaults).
fn to_mapping(v: Value, depends_defaults: bool) -> Value {
    match v {
        Value::Sequence(items) => {
            let mut m = Mapping::new();
            for item in items {
                let val = if depends_defaults {
                    let mut d = Mapping::new();
                    d.insert("condition".into(), "service_started".into());
                    d.insert("required".into(), Value::Bool(true));
                    Value::Mapping(d)
                } else {
                    Value::Null
                };
                m.insert(item, val);
            }
            Value::Mapping(m)
        }
        other => other,
    }
}

/// compose-go's `EnforceUnicity` on one service: one entry per key in the
/// lists compose indexes, the later entry in the earlier one's place.
fn unicity(v: &mut Value, path: &mut Vec<String>) -> Result<(), String> {
    match v {
        Value::Mapping(m) => {
            for (k, item) in m.iter_mut() {
                path.push(key_text(k));
                let r = unicity(item, path);
                path.pop();
                r?;
            }
        }
        Value::Sequence(items) => {
            let Some(index) = indexer(path) else {
                return Ok(());
            };
            let mut out: Vec<Value> = Vec::new();
            let mut keys: Vec<String> = Vec::new();
            for item in items.drain(..) {
                let key = index(&item)
                    .ok_or_else(|| format!("{}: an entry compose cannot index", path.join(".")))?;
                match keys.iter().position(|k| *k == key) {
                    Some(j) => out[j] = item,
                    None => {
                        keys.push(key);
                        out.push(item);
                    }
                }
            }
            *items = out;
        }
        _ => {}
    }
    Ok(())
}

type Indexer = fn(&Value) -> Option<String>;

fn indexer(path: &[String]) -> Option<Indexer> {
    let key_value: &[&str] = &[
        "annotations",
        "build.args",
        "build.additional_contexts",
        "build.platform",
        "build.tags",
        "build.labels",
        "cap_add",
        "cap_drop",
        "deploy.labels",
        "dns",
        "dns_opt",
        "dns_search",
        "environment",
        "labels",
        "links",
        "networks.*.aliases",
        "networks.*.link_local_ips",
        "profiles",
        "sysctls",
        "tmpfs",
    ];
    if key_value.iter().any(|p| matches(path, p)) {
        return Some(|v| {
            v.as_str()
                .map(|s| s.split_once('=').map_or(s, |(k, _)| k).to_string())
        });
    }
    let p = |pat: &str| matches(path, pat);
    if p("env_file") {
        return Some(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Mapping(m) => m.get("path").and_then(Value::as_str).map(str::to_string),
            _ => Some(String::new()),
        });
    }
    if p("expose") {
        return Some(|v| match v {
            Value::String(_) | Value::Number(_) => Some(scalar_text(v)),
            _ => None,
        });
    }
    if p("ports") {
        return Some(|v| match v {
            Value::Mapping(m) => {
                let get =
                    |k: &str, d: &str| m.get(k).map(scalar_text).unwrap_or_else(|| d.to_string());
                Some(format!(
                    "{}:{}:{}/{}",
                    get("host_ip", "0.0.0.0"),
                    get("published", ""),
                    get("target", ""),
                    get("protocol", "tcp")
                ))
            }
            other => Some(scalar_text(other)),
        });
    }
    if p("secrets") || p("configs") {
        let secrets = p("secrets");
        return Some(if secrets {
            |v| mount_key(v, "/run/secrets")
        } else {
            |v| mount_key(v, "")
        });
    }
    if p("volumes") {
        return Some(|v| match v {
            Value::Mapping(m) => m.get("target").and_then(Value::as_str).map(str::to_string),
            Value::String(s) => {
                let parts: Vec<&str> = s.split(':').collect();
                Some(if parts.len() == 1 { parts[0] } else { parts[1] }.to_string())
            }
            _ => Some(String::new()),
        });
    }
    if p("devices") {
        return Some(|v| match v {
            Value::Mapping(m) => m.get("target").and_then(Value::as_str).map(str::to_string),
            Value::String(s) => {
                let parts: Vec<&str> = s.split(':').collect();
                Some(if parts.len() == 1 { parts[0] } else { parts[1] }.to_string())
            }
            _ => Some(String::new()),
        });
    }
    None
}

fn mount_key(v: &Value, default: &str) -> Option<String> {
    match v {
        Value::String(s) => Some(format!("{default}/{s}")),
        Value::Mapping(m) => Some(match m.get("target") {
            Some(t) => scalar_text(t),
            None => format!(
                "{default}/{}",
                m.get("source").map(scalar_text).unwrap_or_default()
            ),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(y: &str) -> Value {
        serde_norway::from_str(y).unwrap()
    }

    #[test]
    fn the_base_is_merged_under_the_extending_service_as_compose_merges() {
        let mut d = doc("services:
  base:
    image: docker.io/library/app:1
    command: [a, b]
    environment: {A: '1', B: '2'}
    ports: ['80:80']
    volumes: ['data:/data', '/h:/x']
    networks: [front]
    labels: [l=1]
  web:
    extends: base
    command: [c]
    environment: [B=3, C]
    ports: ['81:81']
    volumes: ['other:/data']
    networks: {back: {aliases: [w]}}
  deep:
    extends: {service: web}
    restart: always
");
        let done = resolve(&mut d, Path::new("/")).unwrap();
        assert_eq!(done.len(), 2);
        let web = &d["services"]["web"];
        assert!(web.get("extends").is_none());
        assert_eq!(web["image"], doc("docker.io/library/app:1"));
        assert_eq!(web["command"], doc("[c]"));
        assert_eq!(web["environment"], doc("[A=1, B=3, C]"));
        assert_eq!(web["ports"], doc("['80:80', '81:81']"));
        assert_eq!(web["volumes"], doc("['other:/data', '/h:/x']"));
        assert_eq!(web["networks"], doc("{front: null, back: {aliases: [w]}}"));
        assert_eq!(web["labels"], doc("[l=1]"));
        let deep = &d["services"]["deep"];
        assert_eq!(deep["command"], doc("[c]"));
        assert_eq!(deep["restart"], doc("always"));
        assert_eq!(d["services"]["base"]["command"], doc("[a, b]"));
    }

    #[test]
    fn later_documents_merge_as_compose_merges_files_with_reset_and_override() {
        let base = doc("x-a: {k: 1, j: 2}
services:
  web:
    image: a:1
    environment: {A: '1'}
    ports: ['80:80']
    healthcheck: {test: [CMD, 'true'], interval: 5s}
    labels: [l=1]
  db:
    image: d:1
networks:
  n:
    labels: {a: '1'}
    ipam:
      config:
        - subnet: 10.0.0.0/24
        - subnet: 10.1.0.0/24
");
        let over = doc("x-a: {k: 3}
services:
  web:
    environment: [B=2]
    ports: !override ['443:443']
    healthcheck: !reset null
    labels: {l: '2'}
  cache:
    image: c:1
    environment: {X: !reset null, Y: '1'}
networks:
  n:
    labels: [b=2]
    ipam:
      config:
        - subnet: 10.1.0.0/24
          gateway: 10.1.0.254
        - subnet: 10.2.0.0/24
");
        let m = merge_documents(base, over).unwrap();
        // `x-` keys are replaced, not merged.
        assert_eq!(m["x-a"], doc("{k: 3}"));
        let web = &m["services"]["web"];
        assert_eq!(web["image"], doc("a:1"));
        assert_eq!(web["environment"], doc("[A=1, B=2]"));
        assert_eq!(web["ports"], doc("['443:443']"));
        assert!(web.get("healthcheck").is_none());
        assert_eq!(web["labels"], doc("[l=2]"));
        assert_eq!(m["services"]["cache"]["environment"], doc("{Y: '1'}"));
        let names: Vec<String> = m["services"]
            .as_mapping()
            .unwrap()
            .keys()
            .map(key_text)
            .collect();
        assert_eq!(names, ["web", "db", "cache"]);
        assert_eq!(m["networks"]["n"]["labels"], doc("[a=1, b=2]"));
        assert_eq!(
            m["networks"]["n"]["ipam"]["config"],
            doc(
                "[{subnet: 10.0.0.0/24}, {subnet: 10.1.0.0/24, gateway: 10.1.0.254}, {subnet: 10.2.0.0/24}]"
            )
        );
    }

    #[test]
    fn missing_bases_and_cycles_are_errors_and_other_files_are_read() {
        let mut d = doc("services:\n  a:\n    extends: nope\n");
        assert!(
            resolve(&mut d, Path::new("/"))
                .unwrap_err()
                .contains("no such service")
        );
        let mut d = doc("services:\n  a:\n    extends: b\n  b:\n    extends: a\n");
        assert!(
            resolve(&mut d, Path::new("/"))
                .unwrap_err()
                .contains("cycle")
        );
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join("base.yml"),
            "services:\n  b:\n    image: docker.io/library/b:1\n    env_file: [b.env]\n    volumes: [./d:/d]\n",
        )
        .unwrap();
        let mut d = doc("services:\n  a:\n    extends: {file: sub/../base.yml, service: b}\n");
        let here = tmp.path().join("here");
        std::fs::create_dir(&here).unwrap();
        std::fs::create_dir(here.join("sub")).unwrap();
        let err = resolve(&mut d, &here).unwrap_err();
        assert!(err.contains("base.yml"), "{err}");
        let mut d = doc("services:\n  a:\n    extends: {file: ../base.yml, service: b}\n");
        assert_eq!(resolve(&mut d, &here).unwrap().len(), 1);
        let a = &d["services"]["a"];
        let root = tmp.path().to_str().unwrap();
        assert_eq!(a["image"], doc("docker.io/library/b:1"));
        assert_eq!(a["env_file"][0].as_str().unwrap(), format!("{root}/b.env"));
        assert_eq!(a["volumes"][0].as_str().unwrap(), format!("{root}/d:/d"));
        let mut d = doc("services:\n  a:\n    extends: {file: ../base.yml, service: nope}\n");
        assert!(
            resolve(&mut d, &here)
                .unwrap_err()
                .contains("no service `nope`")
        );
    }
}
