//! `windlass import`: a docker-compose project → app manifests plus
//! `windlass.toml`, and a report of every key that did not carry over
//! unchanged.
//!
//! The compose file is read as raw YAML, interpolated (or not) as the
//! compose specification says, then each service is read key by key through
//! `docker-compose-types`. Nothing is ever dropped without a report entry,
//! and no value the secret rule marks (see [`interpolate::SecretRule`]) is
//! ever written. Writing is all or nothing: the new fleet is staged and
//! validated by the same loader `windlass validate` uses before any file of
//! APPS_DIR changes, and an existing manifest is never replaced without
//! `--force`.

pub mod adopt;
pub mod convert;
pub mod depth;
pub mod envfile;
pub mod extends;
pub mod files;
pub mod interpolate;
pub mod manifest;
pub mod podman;
pub mod quadlet;
pub mod report;
pub mod service;
pub mod unit_syntax;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

use crate::manifest::diag::Diagnostic;
use crate::model::load_fleet;
use crate::model::values::{check_path, is_object_name};
use interpolate::{InterpolationError, Interpolator, Outcome, SecretRule, Vars, parse_env_file};
use manifest::{AppManifest, NetworkDef, VolumeDef, merge_fleet_file, set_pair};
use report::{Action, Report, ServiceResult};
use service::{Context, SecretDef};

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The compose files, later ones over earlier ones (`-f a -f b`); the
    /// first one's directory is the project directory.
    pub compose_files: Vec<PathBuf>,
    /// Also read the override file compose picks up beside the first file
    /// when no `-f` is given (`compose.override.yml`, …; see
    /// [`files::DEFAULT_OVERRIDES`]).
    pub default_override: bool,
    /// `--project`; default: the file's `name:`, else its directory's name.
    pub project: Option<String>,
    /// `--prefix`: every app is named `<prefix>-<service>`.
    pub prefix: Option<String>,
    /// `--env-file` (repeatable, a later file wins); none: `.env` beside
    /// the compose file, when it exists.
    pub env_files: Vec<PathBuf>,
    /// `--process-env`: interpolation reads `environment` too (and it wins
    /// over the env files, as in compose). Without it only the env files
    /// and the compose file's own defaults are used.
    pub process_env: bool,
    /// The process environment, passed in so that tests control it: for
    /// `--process-env`, and `HOME` for `~` in paths.
    pub environment: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {message}")]
    Compose { path: PathBuf, message: String },
    #[error("{path}: interpolation: {source} ({read})")]
    Interpolation {
        path: PathBuf,
        /// Where variables came from, for the message.
        read: String,
        source: InterpolationError,
    },
    #[error("{path}: {message}")]
    EnvFile { path: PathBuf, message: String },
    #[error("{0}")]
    Names(String),
    #[error(
        "{} already exist{}; nothing was written (use --force to replace)",
        .0.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        if .0.len() == 1 { "s" } else { "" }
    )]
    Exists(Vec<PathBuf>),
    #[error("the imported fleet does not validate; nothing was written")]
    Invalid(Vec<Diagnostic>),
    #[error(
        "--strict: {0} key(s) were dropped, left uninterpolated, withheld or would be read differently; nothing was written"
    )]
    Strict(usize),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ImportError + '_ {
    move |source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The result of an import, in memory.
#[derive(Debug)]
pub struct Imported {
    pub project: String,
    pub manifests: Vec<AppManifest>,
    pub networks: Vec<(String, NetworkDef)>,
    pub volumes: Vec<(String, VolumeDef)>,
    pub report: Report,
}

fn key_str(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => "?".into(),
    }
}

fn string_pairs(v: Option<&Value>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match v {
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let val = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => String::new(),
                };
                set_pair(&mut out, &key_str(k), val);
            }
        }
        Some(Value::Sequence(s)) => {
            for item in s.iter().filter_map(Value::as_str) {
                let (k, v) = item.split_once('=').unwrap_or((item, ""));
                set_pair(&mut out, k, v.to_string());
            }
        }
        _ => {}
    }
    out
}

/// How deep `include` is followed (an included project that includes
/// another, …).
const MAX_INCLUDE_DEPTH: usize = 16;

/// Reads the compose files and maps them. Writes nothing.
pub fn import(opts: &Options) -> Result<Imported, ImportError> {
    let Some(path) = opts.compose_files.first() else {
        return Err(ImportError::Names("no compose file given".into()));
    };
    let compose_err = |message: String| ImportError::Compose {
        path: path.clone(),
        message,
    };
    let mut file_list = opts.compose_files.clone();
    let found_override = if opts.default_override {
        files::default_override(path)
    } else {
        None
    };
    file_list.extend(found_override.clone());
    // Each file with its `extends` resolved, then merged, all before
    // interpolation, so that what a service inherits or is given by a
    // later file is interpolated (and reported) at its own place.
    let loaded = files::load(&file_list, None)?;
    let compose_dir = std::path::absolute(path)
        .map_err(io_err(path))?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let mut doc = loaded.doc;
    let extended = loaded.extended;
    let (mut subs, vars, rule) = substitute_variables(&mut doc, opts, &compose_dir)?;
    // Each included project is read with its own variables, after the
    // including one is interpolated (as compose-go's `ApplyInclude`).
    let mut includes = Includes {
        read: loaded.files.clone(),
        notes: Vec::new(),
    };
    let chain = loaded.files[..1].to_vec();
    apply_includes(
        &loaded.includes,
        &IncludeParent {
            files: &loaded.files,
            defined: &loaded.defined,
            vars: &vars,
            rule: &rule,
            process_env: opts.process_env,
            chain: &chain,
        },
        &mut doc,
        &mut subs,
        &mut includes,
    )?;
    let Value::Mapping(top) = &doc else {
        return Err(compose_err("expected a map at the top level".into()));
    };
    let mut report = Report {
        format: 1,
        interpolated: true,
        process_env: opts.process_env,
        ..Report::default()
    };
    let (project, project_from) = project_name(opts, top, &compose_dir, &vars)?;
    report.project = project.clone();
    report.project_from = project_from;
    if includes.read.len() > 1 {
        report.files = includes
            .read
            .iter()
            .map(|p| p.display().to_string())
            .collect();
    }
    if let Some(o) = &found_override {
        report.files_note = format!(
            "{} was read over {}, as compose reads the override file beside the compose file when no -f is given (`-f {}` alone imports that file alone)",
            o.display(),
            path.display(),
            path.display()
        );
    }
    for (place, note) in includes.notes {
        report.push(None, place, Action::Changed, note);
    }
    report_top_level_keys(top, &mut report);
    for (svc, base) in &extended {
        report.push(
            Some(svc),
            "extends",
            Action::Changed,
            format!("merged with the service `{base}`, as compose merges them (this service's values win; lists are appended, one entry per port, mount target or variable)"),
        );
    }

    let empty = Mapping::new();
    let services = match top.get("services") {
        Some(Value::Mapping(m)) => m,
        None => &empty,
        Some(_) => return Err(compose_err("`services` is not a map".into())),
    };
    if services.is_empty() {
        return Err(compose_err("no services to import".into()));
    }
    let prefix = match &opts.prefix {
        Some(p) => Some(convert::app_prefix(p).map_err(ImportError::Names)?),
        None => None,
    };
    let AppNames { apps, healthy } = app_names(services, &subs, prefix.as_deref(), &mut report)?;
    let (networks_map, network_defs) = top_networks(top.get("networks"), &project, &mut report);
    let (volumes_map, volume_defs) = top_volumes(top.get("volumes"), &project, &mut report);
    let secrets = top_secrets(top.get("secrets"), &compose_dir, &project, &mut report);
    report_top_level_substitutions(&subs, &mut report);

    let network_subnets = network_defs
        .iter()
        .map(|(n, d)| (n.clone(), (d.subnet.clone(), d.gateway.clone())))
        .collect();
    let ctx = Context {
        project: project.clone(),
        network_subnets,
        compose_dir: compose_dir.clone(),
        home: opts.environment.get("HOME").cloned(),
        networks: networks_map,
        volumes: volumes_map,
        secrets,
        apps,
        healthy,
        subs: &subs,
        vars: &vars,
        rule: &rule,
        process_env: opts.process_env,
    };
    let (manifests, used) = map_services(&ctx, services, &mut report);
    let networks = declare_networks(&used.networks, network_defs, &project, &mut report);
    let volumes = declare_volumes(&used.volumes, volume_defs);
    report.podman_secrets = podman_secrets(&manifests);
    if manifests.is_empty() {
        let why: Vec<String> = report
            .not_imported()
            .iter()
            .map(|(svc, why)| format!("\n  service `{svc}`: {why}"))
            .collect();
        return Err(compose_err(format!(
            "no service could be imported:{}",
            why.concat()
        )));
    }
    Ok(Imported {
        project,
        manifests,
        networks,
        volumes,
        report,
    })
}

/// The files an import read (the project's, then each included
/// project's), and a report note per `include` entry.
struct Includes {
    read: Vec<PathBuf>,
    notes: Vec<(String, String)>,
}

/// The project whose `include` entries are being read.
struct IncludeParent<'a> {
    /// Its files, in order.
    files: &'a [PathBuf],
    /// What each of its files defines itself (see [`files::Loaded`]).
    defined: &'a std::collections::BTreeSet<(String, String, usize)>,
    vars: &'a Vars,
    rule: &'a SecretRule,
    process_env: bool,
    /// The first files of the includes that led here, for cycles.
    chain: &'a [PathBuf],
}

/// Reads each `include` entry as compose-go's `ApplyInclude` does: its
/// files as a project of their own (its directory `project_directory`,
/// else the first file's), interpolated with the including project's
/// variables and, for names they leave unset, the entry's `env_file`
/// (else `.env` in its project directory); its relative paths made
/// absolute; its own `include`s followed; then its services, volumes,
/// networks, secrets and configs added to `doc`. A name `doc` has already
/// is an error unless both definitions are equal, as in compose.
fn apply_includes(
    entries: &[files::Include],
    parent: &IncludeParent<'_>,
    doc: &mut Value,
    subs: &mut interpolate::Substitutions,
    out: &mut Includes,
) -> Result<(), ImportError> {
    for inc in entries {
        let err = |message: String| ImportError::Compose {
            path: inc.declared_in.clone(),
            message: format!("{}: {message}", inc.place),
        };
        if parent.chain.len() >= MAX_INCLUDE_DEPTH {
            return Err(err(format!(
                "`include` is nested more than {MAX_INCLUDE_DEPTH} deep"
            )));
        }
        let first = &inc.files[0];
        if parent.chain.contains(first) {
            return Err(err(format!(
                "include cycle: {} is already being read",
                first.display()
            )));
        }
        for f in &inc.files {
            if !f.is_file() {
                return Err(err(format!("{}: no such file", f.display())));
            }
        }
        let loaded = files::load(&inc.files, Some(&inc.project_dir))?;
        let env_files = if inc.env_files.is_empty() {
            let dot_env = inc.project_dir.join(".env");
            if dot_env.is_file() {
                vec![dot_env]
            } else {
                Vec::new()
            }
        } else {
            inc.env_files.clone()
        };
        let mut vars = parent.vars.clone();
        for env_path in &env_files {
            let text = fs::read_to_string(env_path).map_err(io_err(env_path))?;
            let parsed = parse_env_file(&text).map_err(|message| ImportError::EnvFile {
                path: env_path.clone(),
                message,
            })?;
            for (k, v) in parsed {
                vars.env_file.entry(k).or_insert(v);
            }
        }
        let mut rule = parent.rule.clone();
        if let Some(Value::Mapping(secrets)) = loaded.doc.get("secrets") {
            for (_, def) in secrets {
                if let Some(var) = def.get("environment").and_then(Value::as_str) {
                    rule.secret_vars.insert(var.to_string());
                }
            }
        }
        let mut idoc = loaded.doc;
        let interp = Interpolator {
            vars: &vars,
            rule: &rule,
        };
        let mut isubs =
            interpolate::interpolate_document(&mut idoc, &interp).map_err(|source| {
                ImportError::Interpolation {
                    path: first.clone(),
                    read: format!(
                        "the including project's variables{}",
                        if env_files.is_empty() {
                            String::new()
                        } else {
                            format!(
                                ", then {}",
                                env_files
                                    .iter()
                                    .map(|p| p.display().to_string())
                                    .collect::<Vec<_>>()
                                    .join(" and ")
                            )
                        }
                    ),
                    source,
                }
            })?;
        files::absolute_paths(&mut idoc, &inc.project_dir);
        pass_through_from(&mut idoc, &vars, &rule);
        let mut chain = parent.chain.to_vec();
        chain.push(first.clone());
        let notes_before = out.notes.len();
        out.read.extend(loaded.files.iter().cloned());
        apply_includes(
            &loaded.includes,
            &IncludeParent {
                files: &loaded.files,
                defined: &loaded.defined,
                vars: &vars,
                rule: &rule,
                process_env: parent.process_env,
                chain: &chain,
            },
            &mut idoc,
            &mut isubs,
            out,
        )?;
        // Notes of nested includes name the entry that led to them.
        for (place, _) in &mut out.notes[notes_before..] {
            *place = format!("{} → {place}", inc.place);
        }
        let declaring = parent.files.iter().position(|f| f == &inc.declared_in);
        let conflicts = files::import_resources(&idoc, doc);
        if !conflicts.is_empty() {
            let why: Vec<String> = conflicts
                .iter()
                .map(|(kind, name)| {
                    let own = |i: usize| parent.defined.contains(&(kind.clone(), name.clone(), i));
                    if declaring.is_some_and(own) {
                        format!("\n  {kind}.{name} is defined here and by the included {}, differently; compose refuses this too (`conflicts with imported resource`): rename one, or override the included one with a file listed in the entry's `path`", first.display())
                    } else if let Some(other) = (0..parent.files.len()).find(|&i| own(i)) {
                        format!("\n  {kind}.{name} of {} would override the one the included {} defines; windlass import does not merge a file over an included resource: list the overriding file in the entry's `path` instead", parent.files[other].display(), first.display())
                    } else {
                        format!("\n  {kind}.{name} is brought in by two includes, differently; compose refuses this too")
                    }
                })
                .collect();
            return Err(err(format!(
                "a resource conflicts with an included one:{}",
                why.concat()
            )));
        }
        for (p, list) in isubs {
            if files::RESOURCES
                .iter()
                .any(|k| p.starts_with(&format!("{k}.")))
            {
                subs.entry(p).or_insert(list);
            }
        }
        let services: Vec<String> = idoc
            .get("services")
            .and_then(Value::as_mapping)
            .map(|m| m.keys().map(key_str).collect())
            .unwrap_or_default();
        let files_text: Vec<String> = inc.files.iter().map(|f| f.display().to_string()).collect();
        out.notes.insert(
            notes_before,
            (
                inc.place.clone(),
                format!(
                    "{} read as its own project (directory {}; variables: the including project's, then {}); its service{} {} joined this project{}",
                    files_text.join(" with "),
                    inc.project_dir.display(),
                    if env_files.is_empty() {
                        "no env file".to_string()
                    } else {
                        env_files
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(" and ")
                    },
                    if services.len() == 1 { "" } else { "s" },
                    if services.is_empty() {
                        "(none)".to_string()
                    } else {
                        services
                            .iter()
                            .map(|s| format!("`{s}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                    if parent.process_env {
                        " (the process environment first, with --process-env)"
                    } else {
                        ""
                    }
                ),
            ),
        );
    }
    Ok(())
}

/// Sets each `environment` entry without a value (`- K`, `K:`) of an
/// included project's services from that project's variables, as compose
/// resolves them when it loads the included project; a secret one stays
/// a reference, and one left unset is reported with its service.
fn pass_through_from(doc: &mut Value, vars: &Vars, rule: &SecretRule) {
    let Some(Value::Mapping(services)) = doc.get_mut("services") else {
        return;
    };
    for (_, svc) in services.iter_mut() {
        match svc.get_mut("environment") {
            Some(Value::Sequence(items)) => {
                for item in items {
                    if let Value::String(k) = item
                        && !k.contains('=')
                        && !rule.var_is_secret(k)
                        && let Some((v, _)) = vars.get(k)
                    {
                        *k = format!("{k}={v}");
                    }
                }
            }
            Some(Value::Mapping(m)) => {
                for (k, v) in m.iter_mut() {
                    if v.is_null()
                        && let Some(k) = k.as_str()
                        && !rule.var_is_secret(k)
                        && let Some((val, _)) = vars.get(k)
                    {
                        *v = Value::String(val.to_string());
                    }
                }
            }
            _ => {}
        }
    }
}

/// The compose file as YAML with merge keys applied, and its directory
/// (absolute).
fn read_compose(path: &Path) -> Result<(Value, PathBuf), ImportError> {
    let text = fs::read_to_string(path).map_err(io_err(path))?;
    let compose_err = |message: String| ImportError::Compose {
        path: path.to_path_buf(),
        message,
    };
    let too_deep = |line: usize, column: usize| {
        compose_err(format!(
            "nested deeper than {} levels at line {line} column {column}",
            depth::MAX_DEPTH
        ))
    };
    // Before the parser: libyaml takes time quadratic in the depth of
    // flow collections (see `depth`).
    if let Some((line, column)) = depth::too_deep(&text, depth::MAX_DEPTH) {
        return Err(too_deep(line, column));
    }
    let mut doc: Value = serde_norway::from_str(&text).map_err(|e| {
        // The deserializer's own limit (block nesting), said the same way.
        match e.location() {
            Some(at) if e.to_string().starts_with("recursion limit exceeded") => {
                too_deep(at.line(), at.column())
            }
            _ => compose_err(e.to_string()),
        }
    })?;
    resolve_merges(&mut doc).map_err(|e| compose_err(format!("merge keys: {e}")))?;
    let compose_dir = std::path::absolute(path)
        .map_err(io_err(path))?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    Ok((doc, compose_dir))
}

/// Applies the YAML merge keys (`<<`) of `v`, innermost first, so that a
/// merged map which itself uses `<<` brings its merged keys along: a key
/// written in a map wins over a merged one, and of a list of maps the
/// earlier wins. (`serde_norway`'s `apply_merge` works outermost first and
/// leaves such a nested `<<` behind as a plain key.) The recursion is as
/// deep as the document, which the parser limits (see `depth`).
pub fn resolve_merges(v: &mut Value) -> Result<(), String> {
    match v {
        Value::Mapping(m) => {
            let merge = m.remove("<<");
            for item in m.values_mut() {
                resolve_merges(item)?;
            }
            let Some(mut merge) = merge else {
                return Ok(());
            };
            resolve_merges(&mut merge)?;
            let sources = match merge {
                Value::Mapping(src) => vec![src],
                Value::Sequence(items) => items
                    .into_iter()
                    .map(|item| match item {
                        Value::Mapping(src) => Ok(src),
                        _ => Err("each element of a `<<` list must be a map".to_string()),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                _ => return Err("the value of `<<` must be a map or a list of maps".into()),
            };
            for src in sources {
                for (k, val) in src {
                    m.entry(k).or_insert(val);
                }
            }
        }
        Value::Sequence(items) => {
            for item in items {
                resolve_merges(item)?;
            }
        }
        Value::Tagged(t) => resolve_merges(&mut t.value)?,
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
    }
    Ok(())
}

/// Interpolates `doc` in place as the compose specification says, from
/// the env files (`--env-file`, else `.env` beside the compose file),
/// with `--process-env` the process environment over them, and the
/// defaults written in the file; secret values (see [`SecretRule`]) are
/// never substituted. Returns the substitutions, the variables and the
/// secret rule.
fn substitute_variables(
    doc: &mut Value,
    opts: &Options,
    compose_dir: &Path,
) -> Result<(interpolate::Substitutions, Vars, SecretRule), ImportError> {
    // The secret rule needs the variables that feed `secrets:` first.
    let mut rule = SecretRule::default();
    if let Some(Value::Mapping(secrets)) = doc.get("secrets") {
        for (_, def) in secrets {
            if let Some(var) = def.get("environment").and_then(Value::as_str) {
                rule.secret_vars.insert(var.to_string());
            }
        }
    }
    let mut vars = Vars::default();
    if opts.process_env {
        vars.environment = opts.environment.clone();
    }
    let env_files = if opts.env_files.is_empty() {
        let dot_env = compose_dir.join(".env");
        if dot_env.is_file() {
            vec![dot_env]
        } else {
            Vec::new()
        }
    } else {
        opts.env_files.clone()
    };
    for env_path in &env_files {
        let env_text = fs::read_to_string(env_path).map_err(io_err(env_path))?;
        let parsed = parse_env_file(&env_text).map_err(|message| ImportError::EnvFile {
            path: env_path.clone(),
            message,
        })?;
        vars.env_file.extend(parsed);
    }
    let interp = Interpolator {
        vars: &vars,
        rule: &rule,
    };
    let subs = interpolate::interpolate_document(doc, &interp).map_err(|source| {
        ImportError::Interpolation {
            path: opts.compose_files.first().cloned().unwrap_or_default(),
            read: read_from(&env_files, opts.process_env),
            source,
        }
    })?;
    Ok((subs, vars, rule))
}

/// The podman secrets the imported apps reference (not host files), each
/// with the apps that use it, in first-use order.
fn podman_secrets(manifests: &[AppManifest]) -> Vec<report::SecretNeeded> {
    let mut out: Vec<report::SecretNeeded> = Vec::new();
    for m in manifests {
        for s in m.secrets.iter().filter(|s| !s.name.starts_with('/')) {
            match out.iter_mut().find(|n| n.name == s.name) {
                Some(n) => {
                    if !n.apps.contains(&m.app) {
                        n.apps.push(m.app.clone());
                    }
                }
                None => out.push(report::SecretNeeded {
                    name: s.name.clone(),
                    apps: vec![m.app.clone()],
                    command: format!("podman secret create {} -", s.name),
                }),
            }
        }
    }
    out
}

/// Where interpolation read its variables, in words.
fn read_from(env_files: &[PathBuf], process_env: bool) -> String {
    let mut from: Vec<String> = env_files.iter().map(|p| p.display().to_string()).collect();
    if process_env {
        from.push("the process environment".into());
    }
    if from.is_empty() {
        "no variables were read: there is no .env beside the compose file; pass --env-file FILE or --process-env".into()
    } else {
        format!("variables were read from {}", from.join(" and "))
    }
}

/// The project name as compose chooses it: `--project`, else
/// `COMPOSE_PROJECT_NAME` (from the process environment with
/// `--process-env`, else from the env files), else the file's `name:`,
/// else its directory's name; normalised as compose normalises it.
/// Returns the name and where it came from, in words.
fn project_name(
    opts: &Options,
    top: &Mapping,
    compose_dir: &Path,
    vars: &Vars,
) -> Result<(String, String), ImportError> {
    let from_env = vars
        .get("COMPOSE_PROJECT_NAME")
        .filter(|(v, _)| !v.is_empty())
        .map(|(v, src)| {
            let whence = match src {
                interpolate::Source::Environment => {
                    "COMPOSE_PROJECT_NAME in the process environment"
                }
                _ => "COMPOSE_PROJECT_NAME in the env file",
            };
            (v.to_string(), whence.to_string())
        });
    let (project_src, whence) = opts
        .project
        .clone()
        .map(|p| (p, "--project".to_string()))
        .or(from_env)
        .or_else(|| {
            top.get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .map(|n| (n.to_string(), "the top-level `name:`".to_string()))
        })
        .or_else(|| {
            compose_dir.file_name().map(|n| {
                (
                    n.to_string_lossy().into_owned(),
                    "the compose file's directory".to_string(),
                )
            })
        })
        .unwrap_or_else(|| ("default".into(), "no other source".into()));
    let project = convert::project_name(&project_src).ok_or_else(|| {
        ImportError::Names(format!(
            "project name {project_src:?} has no letters or digits; pass --project NAME"
        ))
    })?;
    Ok((project, whence))
}

/// Reports the top-level keys that are not carried over.
fn report_top_level_keys(top: &Mapping, report: &mut Report) {
    for (k, _) in top {
        let key = key_str(k);
        match key.as_str() {
            "services" | "networks" | "volumes" | "secrets" | "name" => {}
            "version" => report.push(
                None,
                key,
                Action::Ignored,
                "obsolete; compose ignores it too",
            ),
            k if k.starts_with("x-") => report.push(
                None,
                key,
                Action::Ignored,
                "extension field, ignored by compose as well",
            ),
            "configs" => report.push(
                None,
                key,
                Action::Dropped,
                "configs are not imported: mount each file as a read-only bind volume",
            ),
            _ => report.push(None, key, Action::Dropped, "no windlass equivalent"),
        }
    }
}

/// What the imported services become.
struct AppNames {
    /// compose service → app name.
    apps: BTreeMap<String, String>,
    /// compose service → whether it has a health check.
    healthy: BTreeMap<String, bool>,
}

/// Names first: every imported service's app name; a name collision or a
/// service name that cannot become an app name is an error naming every
/// one.
fn app_names(
    services: &Mapping,
    subs: &interpolate::Substitutions,
    prefix: Option<&str>,
    report: &mut Report,
) -> Result<AppNames, ImportError> {
    let empty = Mapping::new();
    let mut apps = BTreeMap::new();
    let mut by_app: BTreeMap<String, String> = BTreeMap::new();
    let mut healthy = BTreeMap::new();
    let mut names_err = Vec::new();
    for (k, v) in services {
        let svc = key_str(k);
        let raw = v.as_mapping().unwrap_or(&empty);
        let image_subs = subs
            .get(&format!("services.{svc}.image"))
            .map(Vec::as_slice)
            .unwrap_or_default();
        if let Some(why) = service::unimportable(raw, image_subs) {
            report.push(
                Some(&svc),
                "image",
                Action::Dropped,
                format!("{}{why}", report::NOT_IMPORTED),
            );
            continue;
        }
        let app = match convert::prefixed_app_name(&svc, prefix) {
            Ok(a) => a,
            Err(e) => {
                names_err.push(format!("service `{svc}` {e}"));
                continue;
            }
        };
        if let Some(prev) = by_app.get(&app) {
            names_err.push(format!(
                "services `{prev}` and `{svc}` would both become the app `{app}`; rename one of them in the compose file"
            ));
            continue;
        }
        if app != svc {
            report.push(
                Some(&svc),
                "(service name)",
                Action::Changed,
                format!(
                    "renamed to the app `{app}` (app names match ^[a-z][a-z0-9-]{{0,62}}${})",
                    if prefix.is_some() {
                        ", with --prefix"
                    } else {
                        ""
                    }
                ),
            );
        }
        if let Some(shippers) = crate::model::build::well_known_unit(&app) {
            report.warnings.push(format!(
                "service `{svc}`: the app `{app}` has the name of a service {shippers} ship{}; on a host that has it, the app's unit would hide the distribution's: import with --prefix PFX (apps named PFX-<service>), or rename the app",
                if shippers.contains(" and ") { "" } else { "s" }
            ));
        }
        healthy.insert(svc.clone(), has_health_check(raw));
        by_app.insert(app.clone(), svc.clone());
        apps.insert(svc, app);
    }
    if !names_err.is_empty() {
        return Err(ImportError::Names(names_err.join("\n")));
    }
    Ok(AppNames { apps, healthy })
}

/// A `healthcheck` that is neither disabled nor `NONE`.
fn has_health_check(raw: &Mapping) -> bool {
    raw.get("healthcheck").is_some_and(|h| {
        h.get("disable").and_then(Value::as_bool) != Some(true)
            && h.get("test").is_some_and(|t| {
                t.as_sequence()
                    .and_then(|s| s.first())
                    .and_then(Value::as_str)
                    != Some("NONE")
            })
    })
}

/// The report's words for a variable that is unset and has no default.
pub(crate) const UNSET: &str = "is not set and has no default (compose would put an empty string); kept literally: set it in .env, or pass --env-file FILE or --process-env";

/// Reports the variables outside `services` that stayed literal (those
/// inside are reported with their service).
fn report_top_level_substitutions(subs: &interpolate::Substitutions, report: &mut Report) {
    for (p, list) in subs {
        if p.starts_with("services.") {
            continue;
        }
        for s in list {
            let (action, why) = match s.outcome {
                Outcome::Unset => (Action::Uninterpolated, UNSET),
                Outcome::Withheld => (
                    Action::Withheld,
                    "is secret and was not substituted; kept literally",
                ),
                Outcome::Resolved(_) => continue,
            };
            report.push(None, p.clone(), action, format!("${{{}}} {why}", s.var));
        }
    }
}

/// The networks and volumes the imported apps use, in first-use order.
#[derive(Default)]
struct Used {
    networks: Vec<String>,
    volumes: Vec<String>,
}

/// Maps every service to a manifest (or reports why not), in file order.
fn map_services(
    ctx: &Context<'_>,
    services: &Mapping,
    report: &mut Report,
) -> (Vec<AppManifest>, Used) {
    let empty = Mapping::new();
    let mut manifests = Vec::new();
    let mut used = Used::default();
    for (k, v) in services {
        let svc = key_str(k);
        let raw = v.as_mapping().unwrap_or(&empty);
        match service::map_service(ctx, report, &svc, raw) {
            Some((m, uses)) => {
                report.services.push(ServiceResult {
                    service: svc.clone(),
                    app: Some(m.app.clone()),
                    manifest: Some(format!("{}.toml", m.app)),
                });
                for n in uses.networks {
                    if !used.networks.contains(&n) {
                        used.networks.push(n);
                    }
                }
                for n in uses.volumes {
                    if !used.volumes.contains(&n) {
                        used.volumes.push(n);
                    }
                }
                manifests.push(m);
            }
            None => report.services.push(ServiceResult {
                service: svc,
                app: None,
                manifest: None,
            }),
        }
    }
    (manifests, used)
}

/// The networks windlass.toml declares: those the apps use (with their
/// compose settings, if any), in first-use order; the compose file's
/// other networks are reported as dropped.
fn declare_networks(
    used: &[String],
    mut defs: Vec<(String, NetworkDef)>,
    project: &str,
    report: &mut Report,
) -> Vec<(String, NetworkDef)> {
    let mut networks = Vec::new();
    for n in used {
        if n == "host" {
            continue;
        }
        let def = defs
            .iter()
            .position(|(name, _)| name == n)
            .map(|i| defs.remove(i).1)
            .unwrap_or_default();
        networks.push((n.clone(), def));
    }
    for (n, _) in defs {
        report.push(
            None,
            format!(
                "networks.{}",
                n.strip_prefix(&format!("{project}_")).unwrap_or(&n)
            ),
            Action::Dropped,
            format!("no imported service uses the network `{n}`; not declared"),
        );
    }
    networks
}

/// The volumes windlass.toml declares: those the apps use, in first-use
/// order, then the compose file's other volumes.
fn declare_volumes(used: &[String], defs: Vec<(String, VolumeDef)>) -> Vec<(String, VolumeDef)> {
    let mut volumes = Vec::new();
    let defs: BTreeMap<String, VolumeDef> = defs.into_iter().collect();
    for v in used {
        volumes.push((v.clone(), defs.get(v).cloned().unwrap_or_default()));
    }
    for (v, d) in defs {
        if !used.contains(&v) {
            volumes.push((v, d));
        }
    }
    volumes
}

/// Compose object names may be anything; windlass's are
/// `[A-Za-z0-9][A-Za-z0-9_.-]*`.
fn object_name(name: String, key: &str, report: &mut Report) -> String {
    if is_object_name(&name) && !matches!(name.as_str(), "host" | "none" | "private") {
        return name;
    }
    let mut n: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if !n.starts_with(|c: char| c.is_ascii_alphanumeric())
        || matches!(n.as_str(), "host" | "none" | "private")
    {
        n = format!("x{n}");
    }
    report.push(
        None,
        key,
        Action::Changed,
        format!("`{name}` is not a Podman object name; declared as `{n}`"),
    );
    n
}

fn resource_name(key: &str, def: Option<&Value>, project: &str) -> (String, bool) {
    let external = def.and_then(|d| d.get("external"));
    let is_external = match external {
        Some(Value::Bool(b)) => *b,
        Some(Value::Mapping(_)) => true,
        _ => false,
    };
    let custom = def
        .and_then(|d| d.get("name"))
        .and_then(Value::as_str)
        .or_else(|| external.and_then(|e| e.get("name")).and_then(Value::as_str));
    match custom {
        Some(n) => (n.to_string(), is_external),
        None if is_external => (key.to_string(), true),
        None => (format!("{project}_{key}"), false),
    }
}

/// The windlass name of a top-level network or volume (`kind`), as compose
/// names it: `name:` as written, an external one by its key, any other
/// `<project>_<key>`. Returns the report path and the name.
fn declare(
    kind: &str,
    key: &str,
    def: Option<&Value>,
    project: &str,
    report: &mut Report,
) -> (String, String) {
    let path = format!("{kind}s.{key}");
    let (name, external) = resource_name(key, def, project);
    let name = object_name(name, &path, report);
    if external {
        report.push(
            None,
            format!("{path}.external"),
            Action::Changed,
            format!("declared as `{name}` in windlass.toml; Quadlet uses the existing {kind} of that name"),
        );
    }
    (path, name)
}

fn top_networks(
    v: Option<&Value>,
    project: &str,
    report: &mut Report,
) -> (BTreeMap<String, String>, Vec<(String, NetworkDef)>) {
    let mut map = BTreeMap::new();
    let mut defs = Vec::new();
    let empty = Mapping::new();
    let entries = v.and_then(Value::as_mapping).unwrap_or(&empty);
    let keys: Vec<(String, Option<&Value>)> =
        entries.iter().map(|(k, d)| (key_str(k), Some(d))).collect();
    if !keys.iter().any(|(k, _)| k == "default") {
        // Compose's implicit network; declared only when a service uses it.
        map.insert("default".into(), format!("{project}_default"));
    }
    for (key, def) in keys {
        let def = def.filter(|d| !d.is_null());
        let (path, name) = declare("network", &key, def, project, report);
        let mut nd = NetworkDef::default();
        if let Some(Value::Mapping(m)) = def {
            for (k, val) in m {
                let sk = key_str(k);
                let p = format!("{path}.{sk}");
                match sk.as_str() {
                    "name" | "external" => {}
                    "driver" => match val.as_str() {
                        Some("bridge") => {}
                        Some(d @ ("macvlan" | "ipvlan")) => nd.driver = Some(d.into()),
                        Some(d) => report.push(None, p, Action::Dropped, format!("driver `{d}` is not a Podman network driver; the default (bridge) is used")),
                        None => report.push(None, p, Action::Dropped, "expected a string"),
                    },
                    "internal" => nd.internal = val.as_bool().unwrap_or(false),
                    "enable_ipv6" => nd.ipv6 = val.as_bool().unwrap_or(false),
                    "labels" => nd.labels = string_pairs(Some(val)),
                    "ipam" => {
                        let Value::Mapping(im) = val else { continue };
                        for (ik, iv) in im {
                            let ik = key_str(ik);
                            let ip = format!("{p}.{ik}");
                            match ik.as_str() {
                                "config" => {
                                    for (i, c) in iv.as_sequence().into_iter().flatten().enumerate() {
                                        let cp = format!("{ip}[{i}]");
                                        let Value::Mapping(cm) = c else { continue };
                                        for (ck, cv) in cm {
                                            let ck = key_str(ck);
                                            match (i, ck.as_str(), cv.as_str()) {
                                                (0, "subnet", Some(s)) => nd.subnet = Some(s.into()),
                                                (0, "gateway", Some(g)) => nd.gateway = Some(g.into()),
                                                (0, _, _) => report.push(None, format!("{cp}.{ck}"), Action::Dropped, "windlass networks take one subnet and gateway only"),
                                                _ => report.push(None, format!("{cp}.{ck}"), Action::Dropped, "windlass networks take one subnet only"),
                                            }
                                        }
                                    }
                                }
                                "driver" if iv.as_str() == Some("default") => {}
                                _ => report.push(None, ip, Action::Dropped, "no windlass equivalent"),
                            }
                        }
                    }
                    k if k.starts_with("x-") => report.push(None, p, Action::Ignored, "extension field, ignored by compose as well"),
                    _ => report.push(None, p, Action::Dropped, "no windlass equivalent"),
                }
            }
        }
        map.insert(key, name.clone());
        defs.push((name, nd));
    }
    (map, defs)
}

fn top_volumes(
    v: Option<&Value>,
    project: &str,
    report: &mut Report,
) -> (BTreeMap<String, String>, Vec<(String, VolumeDef)>) {
    let mut map = BTreeMap::new();
    let mut defs = Vec::new();
    let Some(Value::Mapping(entries)) = v else {
        return (map, defs);
    };
    for (k, def) in entries {
        let key = key_str(k);
        let def = Some(def).filter(|d| !d.is_null());
        let (path, name) = declare("volume", &key, def, project, report);
        let mut vd = VolumeDef::default();
        if let Some(Value::Mapping(m)) = def {
            for (sk, val) in m {
                let sk = key_str(sk);
                let p = format!("{path}.{sk}");
                match sk.as_str() {
                    "name" | "external" => {}
                    "driver" => match val.as_str() {
                        Some("local") => {}
                        Some(d) if is_object_name(d) => vd.driver = Some(d.into()),
                        _ => report.push(None, p, Action::Dropped, "not a volume driver name"),
                    },
                    "labels" => vd.labels = string_pairs(Some(val)),
                    "driver_opts" => report.push(
                        None,
                        p,
                        Action::Dropped,
                        "no windlass key for volume driver options",
                    ),
                    k if k.starts_with("x-") => report.push(
                        None,
                        p,
                        Action::Ignored,
                        "extension field, ignored by compose as well",
                    ),
                    _ => report.push(None, p, Action::Dropped, "no windlass equivalent"),
                }
            }
        }
        map.insert(key, name.clone());
        defs.push((name, vd));
    }
    (map, defs)
}

fn top_secrets(
    v: Option<&Value>,
    compose_dir: &Path,
    project: &str,
    report: &mut Report,
) -> BTreeMap<String, SecretDef> {
    let mut out = BTreeMap::new();
    let Some(Value::Mapping(entries)) = v else {
        return out;
    };
    for (k, def) in entries {
        let key = key_str(k);
        let path = format!("secrets.{key}");
        let Some(m) = def.as_mapping() else {
            report.push(None, path, Action::Dropped, "expected a map");
            continue;
        };
        let mut d = None;
        for (sk, val) in m {
            let sk = key_str(sk);
            let p = format!("{path}.{sk}");
            match (sk.as_str(), val) {
                ("file", Value::String(f)) => {
                    let abs = if Path::new(f).is_absolute() {
                        PathBuf::from(f)
                    } else {
                        compose_dir.join(f)
                    };
                    let abs = service::normalize(&abs).to_string_lossy().into_owned();
                    match check_path(&abs) {
                        Ok(()) => {
                            report.push(None, p, Action::Changed, format!("referenced as the host file {abs} (mounted read-only); its content is never read"));
                            d = Some(SecretDef::File(abs));
                        }
                        Err(e) => report.push(None, p, Action::Dropped, format!("{abs}: {e}")),
                    }
                }
                ("environment", Value::String(var)) => {
                    // As compose names a secret it creates: `name:` as
                    // written, else scoped by the project.
                    d = Some(SecretDef::Podman {
                        name: m
                            .get("name")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .unwrap_or_else(|| format!("{project}_{key}")),
                        from_env: Some(var.clone()),
                    });
                }
                ("external", _) | ("name", _) => {
                    if d.is_none() {
                        d = Some(SecretDef::Podman {
                            name: m
                                .get("name")
                                .and_then(Value::as_str)
                                .unwrap_or(&key)
                                .to_string(),
                            from_env: None,
                        });
                    }
                }
                (s, _) if s.starts_with("x-") => report.push(
                    None,
                    p,
                    Action::Ignored,
                    "extension field, ignored by compose as well",
                ),
                _ => report.push(None, p, Action::Dropped, "no windlass equivalent"),
            }
        }
        if let Some(d) = d {
            out.insert(key, d);
        }
    }
    out
}

const HEADER_APP: &str = "Imported by `windlass import` from the compose service `{service}`.\nWhat did not carry over is in the import report (stderr, or --report FILE).";
const HEADER_FLEET: &str =
    "Networks and volumes imported by `windlass import` from the compose project `{project}`.";

/// What `write` did.
#[derive(Debug, Default)]
pub struct Written {
    /// Paths relative to APPS_DIR.
    pub created: Vec<String>,
    pub replaced: Vec<String>,
    /// `networks.x` / `volumes.x` already in windlass.toml, left as they were.
    pub kept: Vec<String>,
}

/// Files to write (path relative to APPS_DIR, text) and the names kept as they were.
type Plan = (Vec<(String, String)>, Vec<String>);

/// The files of an import, relative to APPS_DIR, in the layout the fleet
/// loader reads (manifests under `apps/` when that directory exists).
fn plan(out: &Path, imported: &Imported) -> Result<Plan, ImportError> {
    let sub = if out.join("apps").is_dir() {
        "apps/"
    } else {
        ""
    };
    let mut files = Vec::new();
    for m in &imported.manifests {
        let header = HEADER_APP.replace("{service}", &m.service);
        files.push((format!("{sub}{}.toml", m.app), m.to_toml(&header)));
    }
    let fleet_rel = if out.join("windlass.toml").is_file()
        || sub.is_empty()
        || !out.join("apps/windlass.toml").is_file()
    {
        "windlass.toml".to_string()
    } else {
        "apps/windlass.toml".to_string()
    };
    let fleet_path = out.join(&fleet_rel);
    let existing = if fleet_path.is_file() {
        Some(fs::read_to_string(&fleet_path).map_err(io_err(&fleet_path))?)
    } else {
        None
    };
    let header = HEADER_FLEET.replace("{project}", &imported.project);
    let (text, kept) = merge_fleet_file(
        existing.as_deref(),
        &header,
        &imported.networks,
        &imported.volumes,
    )
    .map_err(|message| ImportError::Compose {
        path: fleet_path.clone(),
        message,
    })?;
    if existing.as_deref() != Some(text.as_str()) {
        files.push((fleet_rel, text));
    }
    Ok((files, kept))
}

fn copy_fleet(from: &Path, to: &Path) -> Result<(), ImportError> {
    for dir in [from.to_path_buf(), from.join("apps")] {
        if !dir.is_dir() {
            continue;
        }
        let rel = dir.strip_prefix(from).unwrap_or(Path::new(""));
        fs::create_dir_all(to.join(rel)).map_err(io_err(to))?;
        for e in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let p = e.map_err(io_err(&dir))?.path();
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if p.is_file() && name.ends_with(".toml") && !name.starts_with('.') {
                let dest = to.join(rel).join(&name);
                fs::copy(&p, &dest).map_err(io_err(&dest))?;
            }
        }
    }
    Ok(())
}

/// Writes the import into `out` (APPS_DIR): all files or none. The new
/// fleet (with whatever `out` already holds) is staged beside `out` and
/// must pass the fleet loader before anything in `out` changes.
pub fn write(out: &Path, imported: &Imported, force: bool) -> Result<Written, ImportError> {
    let (files, kept) = plan(out, imported)?;
    write_files(out, &files, kept, force)
}

/// Writes `files` (paths relative to `out`, texts) into `out`, all or
/// none: refused when a manifest exists and not `force`; staged beside
/// `out`, checked by the fleet loader, then swapped in. Shared by every
/// kind of import.
pub(crate) fn write_files(
    out: &Path,
    files: &[(String, String)],
    kept: Vec<String>,
    force: bool,
) -> Result<Written, ImportError> {
    let mut written = Written {
        kept,
        ..Written::default()
    };
    let existing: Vec<PathBuf> = files
        .iter()
        .map(|(p, _)| p.as_str())
        .filter(|p| !p.ends_with("windlass.toml"))
        .map(|p| out.join(p))
        .filter(|p| p.exists())
        .collect();
    if !existing.is_empty() && !force {
        return Err(ImportError::Exists(existing));
    }
    for (p, _) in files {
        if out.join(p).exists() {
            written.replaced.push(p.clone());
        } else {
            written.created.push(p.clone());
        }
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(io_err(&parent))?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "apps".into());
    let stage = parent.join(format!(".{name}.windlass-import-{}", std::process::id()));
    if stage.exists() {
        fs::remove_dir_all(&stage).map_err(io_err(&stage))?;
    }
    let result = stage_and_swap(out, &stage, files);
    if stage.exists() {
        let _ = fs::remove_dir_all(&stage);
    }
    result.map(|()| written)
}

pub(crate) fn stage_and_swap(
    out: &Path,
    stage: &Path,
    files: &[(String, String)],
) -> Result<(), ImportError> {
    fs::create_dir(stage).map_err(io_err(stage))?;
    let fresh =
        !out.exists() || (out.is_dir() && fs::read_dir(out).map_err(io_err(out))?.next().is_none());
    if !fresh {
        copy_fleet(out, stage)?;
    }
    for (rel, content) in files {
        let p = stage.join(rel);
        if let Some(d) = p.parent() {
            fs::create_dir_all(d).map_err(io_err(d))?;
        }
        fs::write(&p, content).map_err(io_err(&p))?;
    }
    let loaded = load_fleet(stage).map_err(io_err(stage))?;
    if loaded.fleet.is_none() {
        return Err(ImportError::Invalid(loaded.diagnostics));
    }
    for rel in files.iter().map(|(r, _)| r) {
        let f = fs::File::open(stage.join(rel)).map_err(io_err(&stage.join(rel)))?;
        f.sync_all().map_err(io_err(&stage.join(rel)))?;
    }
    if fresh {
        // One rename puts the whole new fleet in place.
        if out.exists() {
            fs::remove_dir(out).map_err(io_err(out))?;
        }
        fs::rename(stage, out).map_err(io_err(out))?;
        return Ok(());
    }
    // Into an existing fleet: each file is renamed into place (each one
    // atomically); a failure removes the files this run created.
    let mut created = Vec::new();
    for (rel, _) in files {
        let dest = out.join(rel);
        let existed = dest.exists();
        if let Err(e) = fs::rename(stage.join(rel), &dest) {
            for c in &created {
                let _ = fs::remove_file(c);
            }
            return Err(ImportError::Io {
                path: dest,
                source: e,
            });
        }
        if !existed {
            created.push(dest);
        }
    }
    if let Ok(d) = fs::File::open(out) {
        let _ = d.sync_all();
    }
    Ok(())
}
