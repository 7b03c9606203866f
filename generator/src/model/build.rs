//! Builds a validated `Fleet` from a fleet directory: reads every manifest,
//! checks every value, then the fleet as a whole (unique names and unit
//! names, dependencies, cycles, declared networks).
//!
//! Never stops at the first problem, and never returns a fleet when any
//! error was found: a partial fleet must not reach an emitter.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::time::{parse_timespan, validate_calendar};
use super::values::*;
use super::*;
use crate::input_file::{self, InputFile};
use crate::manifest::diag::{self, Diagnostic, Source, Span};
use crate::manifest::{self, Table, schema};

/// The result of loading a fleet: the fleet only when there were no errors,
/// and every diagnostic (errors and warnings), sorted.
#[derive(Debug)]
pub struct LoadedFleet {
    pub fleet: Option<Fleet>,
    pub diagnostics: Vec<Diagnostic>,
    /// Every file read, in the order read, as it was when read.
    pub read: Vec<InputFile>,
}

impl LoadedFleet {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }
}

/// Where a fleet's files are: app manifests in `DIR/apps/` when that exists,
/// else in `DIR`; `windlass.toml` in `DIR` (or beside the apps). Each with
/// its metadata (symlinks followed), as the check for a regular file saw it;
/// without `stat`, a manifest the directory lists as a regular file has no
/// metadata taken (the read takes it from the open file).
type Found = (PathBuf, Option<std::fs::Metadata>);

fn discover(dir: &Path, stat: bool) -> std::io::Result<(Option<Found>, Vec<Found>)> {
    let apps_dir = if dir.join("apps").is_dir() {
        dir.join("apps")
    } else {
        dir.to_path_buf()
    };
    let mut fleet_file = None;
    for cand in [dir.join("windlass.toml"), apps_dir.join("windlass.toml")] {
        if let Ok(meta) = std::fs::metadata(&cand)
            && meta.is_file()
        {
            fleet_file = Some((cand, Some(meta)));
            break;
        }
    }
    let mut apps = Vec::new();
    for entry in std::fs::read_dir(&apps_dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with('.') || name == "windlass.toml" || !name.ends_with(".toml") {
            continue;
        }
        // What a symlink points to, else the entry itself (looked up in
        // the open directory, not by its path again).
        let meta = match entry.file_type() {
            Ok(t) if t.is_file() && !stat => {
                apps.push((path, None));
                continue;
            }
            Ok(t) if !t.is_symlink() => entry.metadata(),
            _ => std::fs::metadata(&path),
        };
        if let Ok(meta) = meta
            && meta.is_file()
        {
            apps.push((path, Some(meta)));
        }
    }
    // All in one directory, so the bytes order them as `Path`'s order
    // would (the same prefix, then the names).
    apps.sort_unstable_by(|a, b| {
        a.0.as_os_str()
            .as_encoded_bytes()
            .cmp(b.0.as_os_str().as_encoded_bytes())
    });
    Ok((fleet_file, apps))
}

/// The files `load_fleet(dir)` reads, in the order it reads them
/// (`windlass.toml` first, then the manifests by path), each with its
/// current metadata. Reads no file.
pub fn input_files(dir: &Path) -> std::io::Result<Vec<(PathBuf, std::fs::Metadata)>> {
    let (fleet_file, apps) = discover(dir, true)?;
    Ok(fleet_file
        .into_iter()
        .chain(apps)
        .filter_map(|(p, m)| Some((p, m?)))
        .collect())
}

fn read_source(
    path: &Path,
    base: &Path,
    diags: &mut Vec<Diagnostic>,
) -> Option<(Arc<Source>, (String, String), InputFile)> {
    // Paths in messages are shown as the user named them.
    let display = path.to_path_buf();
    let rel = path
        .strip_prefix(base)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned();
    match input_file::read(path) {
        Ok((read, bytes)) => match String::from_utf8(bytes) {
            Ok(text) => {
                let sha = read.sha256.clone();
                Some((Source::new(display, text), (rel, sha), read))
            }
            Err(e) => {
                let src = Source::new(display, String::from_utf8_lossy(e.as_bytes()).into_owned());
                let at = e.utf8_error().valid_up_to();
                diags.push(Diagnostic::error(
                    Span::new(&src, at..at + 1),
                    "",
                    "expected UTF-8 text, found invalid UTF-8".to_string(),
                ));
                None
            }
        },
        Err(e) => {
            let src = Source::new(display, String::new());
            diags.push(Diagnostic::error(
                Span::file(&src),
                "",
                format!("cannot read file: {e}"),
            ));
            None
        }
    }
}

/// Loads and validates the fleet in `dir`.
pub fn load_fleet(dir: &Path) -> std::io::Result<LoadedFleet> {
    let (fleet_file, app_files) = discover(dir, false)?;
    crate::phase!("inputs listed");
    let mut diags = Vec::new();
    let mut inputs = Vec::new();
    let mut read = Vec::new();
    let mut b = Builder { diags: &mut diags };

    let mut podman = PodmanVersion::DEFAULT;
    let mut drift = DriftDefaults::default();
    let mut networks = BTreeMap::new();
    let mut volumes = BTreeMap::new();
    let mut network_spans = BTreeMap::new();
    if let Some(path) = &fleet_file
        && let Some((src, input, file)) = read_source(&path.0, dir, b.diags)
    {
        inputs.push(input);
        read.push(file);
        if let Some(t) = manifest::parse(&src, schema::FLEET, b.diags) {
            if let Some(host) = t.table("host") {
                if let Some((v, span)) = host.str("podman") {
                    match parse_podman_version(v) {
                        Ok(v) => podman = v,
                        Err(e) => b.err(
                            span,
                            "host.podman",
                            format!("{e}, found {}", diag::found(v)),
                        ),
                    }
                }
                drift.mode = drift_mode(host);
                drift.ignore = b.drift_ignore(host, "host", Vec::new());
            }
            if let Some(nets) = t.table("networks") {
                for (name, entry) in &nets.entries {
                    let key = format!("networks.{name}");
                    if !is_object_name(name) {
                        b.err(
                            &entry.key_span,
                            &key,
                            format!(
                                "expected a network name ([A-Za-z0-9][A-Za-z0-9_.-]*), found {}",
                                diag::found(name)
                            ),
                        );
                        continue;
                    }
                    if PODMAN_NETWORK_MODES.contains(&name.as_str()) {
                        let removed = if name == "slirp4netns" {
                            "; Podman 6 removed slirp4netns altogether (`Network=slirp4netns` is an error there; pasta replaces it)"
                        } else {
                            ""
                        };
                        b.err(&entry.key_span, &key, format!("expected a network name, found {}: Podman reads it as a network mode (`--network={name}`), not as this network, and `podman network create` refuses it{removed}", diag::found(name)));
                        b.diags.last_mut().expect("just pushed").help = Some(format!(
                            "name the network otherwise, e.g. [networks.{name}-net], and list that name in the apps' `container.networks`; Podman's network modes are not networks: {}",
                            PODMAN_NETWORK_MODES.join(", ")
                        ));
                        continue;
                    }
                    if let manifest::NodeValue::Table(nt) = &entry.node.value {
                        networks.insert(name.clone(), b.network(nt, &key));
                        network_spans.insert(name.clone(), entry.key_span.clone());
                    }
                }
            }
            if let Some(vols) = t.table("volumes") {
                for (name, entry) in &vols.entries {
                    let key = format!("volumes.{name}");
                    if !is_object_name(name) {
                        b.err(
                            &entry.key_span,
                            &key,
                            format!(
                                "expected a volume name ([A-Za-z0-9][A-Za-z0-9_.-]*), found {}",
                                diag::found(name)
                            ),
                        );
                        continue;
                    }
                    if let manifest::NodeValue::Table(vt) = &entry.node.value {
                        let driver = vt.str("driver").map(|(s, sp)| {
                            b.object_name(s, sp, &format!("{key}.driver"));
                            s.to_string()
                        });
                        let labels = b.labels(vt, &key);
                        volumes.insert(name.clone(), Volume { driver, labels });
                    }
                }
            }
        }
    }

    // Each app file is read, parsed and checked on its own (on as many
    // threads as there are cores); the results are taken in file order, so
    // the diagnostics and the fleet are what a sequential loop gives.
    type OneApp = (
        Option<((String, String), InputFile)>,
        Option<(App, Span, AppSpans)>,
        Vec<Diagnostic>,
    );
    let per_app: Vec<OneApp> = crate::par::map(&app_files, |(path, _)| {
        let mut diags = Vec::new();
        let mut b = Builder { diags: &mut diags };
        let Some((src, input, file)) = read_source(path, dir, b.diags) else {
            return (None, None, diags);
        };
        let Some(table) = manifest::parse(&src, schema::APP, b.diags) else {
            return (Some((input, file)), None, diags);
        };
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let rel = path
            .strip_prefix(dir)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned();
        let app = b.app(&table, &src, &stem, rel, &drift);
        (Some((input, file)), app, diags)
    });
    // Each app is moved once, into the fleet's list; the fleet rules see
    // it beside its spans.
    let mut apps: Vec<App> = Vec::with_capacity(per_app.len());
    let mut spans: Vec<(Span, AppSpans)> = Vec::with_capacity(per_app.len());
    crate::phase!("apps read, parsed and modelled");
    for (read_one, app, app_diags) in per_app {
        if let Some((input, file)) = read_one {
            inputs.push(input);
            read.push(file);
        }
        if let Some((app, name_span, app_spans)) = app {
            apps.push(app);
            spans.push((name_span, app_spans));
        }
        b.diags.extend(app_diags);
    }
    let with_spans: Vec<(&App, &Span, &AppSpans)> = apps
        .iter()
        .zip(&spans)
        .map(|(a, (name_span, s))| (a, name_span, s))
        .collect();
    b.fleet_rules(&with_spans, &networks, &mut volumes);
    drop(with_spans);
    // The spans are only for the fleet rules' messages.
    crate::par::drop_later(spans);
    crate::phase!("fleet rules checked");

    inputs.sort();
    diag::sort(&mut diags);
    let ok = !diags.iter().any(Diagnostic::is_error);
    apps.sort_by(|a, b| a.name.cmp(&b.name));
    let fleet = ok.then_some(Fleet {
        podman,
        networks,
        volumes,
        apps,
        inputs,
    });
    Ok(LoadedFleet {
        fleet,
        diagnostics: diags,
        read,
    })
}

/// `windlass.toml`'s `[host] drift` and `drift_ignore`: every app's
/// drift policy unless it says otherwise (`drift`) or more (`drift_ignore`).
#[derive(Debug, Default)]
struct DriftDefaults {
    mode: Option<DriftMode>,
    ignore: Vec<String>,
}

/// `drift` of `t` (its value was checked against the schema's).
fn drift_mode(t: &Table) -> Option<DriftMode> {
    match t.str("drift") {
        Some(("report", _)) => Some(DriftMode::Report),
        Some(("restore", _)) => Some(DriftMode::Restore),
        _ => None,
    }
}

/// Whether `word`, before the first `:` of an ignore pattern, is meant as
/// a drift kind: lower-case letters, `-` and `_` (a misspelled kind), so
/// not a path (`/`), nor a glob (`*`, `?`), nor a unit name's mixed case.
fn looks_like_kind(word: &str) -> bool {
    !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '-' || c == '_')
}

/// Where an app's cross-file references stood, for fleet-wide errors.
struct AppSpans {
    file: Span,
    requires: Vec<Span>,
    wants: Vec<Span>,
    networks: Vec<Span>,
    /// The `networks` value, or the container table.
    networks_key: Span,
    /// `container.container_name`'s value.
    container_name: Option<Span>,
    /// Each job's name.
    jobs: Vec<Span>,
    /// Each named volume the container mounts, with its entry in
    /// `container.volumes`.
    volumes: Vec<(String, Span)>,
    /// `update.on_remove`'s value, when it is `"purge-data"`.
    on_remove: Option<Span>,
}

struct Builder<'a> {
    diags: &'a mut Vec<Diagnostic>,
}

/// Characters Quadlet 5.x cannot carry in a quoted word: it writes U+0080 as
/// the byte escape `\x80`, which systemd turns into invalid UTF-8.
fn quadlet_unsafe_char(s: &str) -> Option<char> {
    s.chars().find(|&c| c == '\u{80}')
}

impl Builder<'_> {
    fn err(&mut self, span: &Span, key: &str, msg: impl Into<String>) {
        self.diags.push(Diagnostic::error(span.clone(), key, msg));
    }

    fn object_name(&mut self, s: &str, span: &Span, key: &str) -> bool {
        if is_object_name(s) {
            true
        } else {
            self.err(
                span,
                key,
                format!(
                    "expected a name of [A-Za-z0-9][A-Za-z0-9_.-]*, found {}",
                    diag::found(s)
                ),
            );
            false
        }
    }

    fn span_of(&self, t: &Table, key: &str, fallback: &Span) -> Span {
        t.entries
            .get(key)
            .map(|e| e.key_span.clone())
            .unwrap_or_else(|| fallback.clone())
    }

    fn duration(&mut self, t: &Table, key: &str, path: &str) -> Option<u64> {
        let (s, span) = t.str(key)?;
        match parse_timespan(s) {
            Ok(0) => {
                self.err(
                    span,
                    &format!("{path}.{key}"),
                    "expected a time span greater than 0, found 0".to_string(),
                );
                None
            }
            Ok(v) => Some(v),
            Err(e) => {
                let span = match e.offset {
                    Some(o) if o <= s.len() => span.sub(1 + o..1 + s.len()),
                    _ => span.clone(),
                };
                self.err(
                    &span,
                    &format!("{path}.{key}"),
                    format!("{}, found {}", e.message, diag::found(s)),
                );
                None
            }
        }
    }

    /// Strings that Quadlet copies into `podman run` arguments. The key
    /// (`container.env.X`) is spelt out only for a diagnostic.
    fn quadlet_text(&mut self, s: &str, span: &Span, key: impl FnOnce() -> String) {
        if let Some(c) = quadlet_unsafe_char(s) {
            self.err(span, &key(), format!(
                "U+{:04X} cannot pass through Quadlet (it writes it as the byte escape \\x80, which systemd turns into invalid UTF-8); found {}",
                c as u32, diag::found(s)
            ));
        }
    }

    fn labels(&mut self, t: &Table, path: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (k, ks, v, vs) in t.string_map("labels") {
            let key = || format!("{path}.labels.{k}");
            if let Err(e) = check_label_key(k) {
                self.err(ks, &key(), format!("{e}, found {}", diag::found(k)));
                continue;
            }
            self.quadlet_text(k, ks, key);
            self.quadlet_text(v, vs, key);
            out.insert(k.to_string(), v.to_string());
        }
        out
    }

    fn network(&mut self, t: &Table, path: &str) -> Network {
        let mut n = Network {
            internal: t.bool("internal").unwrap_or(false),
            ipv6: t.bool("ipv6").unwrap_or(false),
            ..Network::default()
        };
        if let Some((s, span)) = t.str("subnet") {
            let ok = s.split_once('/').is_some_and(|(ip, len)| {
                ip.parse::<std::net::IpAddr>().is_ok_and(|ip| {
                    len.parse::<u8>()
                        .is_ok_and(|l| l <= if ip.is_ipv4() { 32 } else { 128 })
                })
            });
            if ok {
                n.subnet = Some(s.to_string());
            } else {
                self.err(
                    span,
                    &format!("{path}.subnet"),
                    format!(
                        "expected a CIDR subnet such as \"10.89.0.0/24\", found {}",
                        diag::found(s)
                    ),
                );
            }
        }
        if let Some((s, span)) = t.str("gateway") {
            if s.parse::<std::net::IpAddr>().is_ok() {
                n.gateway = Some(s.to_string());
            } else {
                self.err(
                    span,
                    &format!("{path}.gateway"),
                    format!("expected an IP address, found {}", diag::found(s)),
                );
            }
        }
        if let Some((s, span)) = t.str("driver")
            && self.object_name(s, span, &format!("{path}.driver"))
        {
            n.driver = Some(s.to_string());
        }
        n.labels = self.labels(t, path);
        n
    }

    /// `drift_ignore` of `t` (`path` being `update` or `host`) added to
    /// `patterns`, each pattern once, in order. A pattern is `GLOB` or
    /// `KIND:GLOB`: never empty, and a word before the first `:` that
    /// looks like a kind must be one, with a glob after it.
    fn drift_ignore(&mut self, t: &Table, path: &str, mut patterns: Vec<String>) -> Vec<String> {
        for (i, (p, span)) in t.strings("drift_ignore").into_iter().enumerate() {
            let key = format!("{path}.drift_ignore[{i}]");
            let kinds = || {
                windlass_contract::DRIFT_KINDS
                    .iter()
                    .map(|k| format!("\"{k}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if p.is_empty() {
                self.diags.push(
                    Diagnostic::error(
                        span.clone(),
                        &key,
                        "expected a pattern, GLOB or KIND:GLOB, found an empty string",
                    )
                    .with_help("an empty pattern would ignore nothing; remove it"),
                );
                continue;
            }
            if let Some((word, glob)) = p.split_once(':')
                && looks_like_kind(word)
            {
                if !windlass_contract::DRIFT_KINDS.contains(&word) {
                    let mut d = Diagnostic::error(
                        span.clone(),
                        &key,
                        format!(
                            "expected a drift kind before `:`, one of {}, found {} in {}",
                            kinds(),
                            diag::found(word),
                            diag::found(p)
                        ),
                    );
                    let dashed = word.replace('_', "-");
                    if windlass_contract::DRIFT_KINDS.contains(&dashed.as_str()) {
                        d = d.with_help(format!("the kind is spelled `{dashed}`"));
                    }
                    self.diags.push(d);
                    continue;
                }
                if glob.is_empty() {
                    self.err(
                        span,
                        &key,
                        format!(
                            "expected a glob after `{word}:` (`{word}:**` for every finding of that kind), found nothing in {}",
                            diag::found(p)
                        ),
                    );
                    continue;
                }
            }
            if !patterns.iter().any(|q| q == p) {
                patterns.push(p.to_string());
            }
        }
        patterns
    }

    fn command(&mut self, t: &Table, key: &str, path: &str) -> Option<Vec<String>> {
        t.get(key)?;
        let items = t.strings(key);
        if items.is_empty() {
            let span = t.get(key).map(|n| n.span.clone())?;
            self.err(
                &span,
                &format!("{path}.{key}"),
                "expected a non-empty array of strings (exec form), found []".to_string(),
            );
            return None;
        }
        Some(items.iter().map(|(s, _)| s.to_string()).collect())
    }

    fn app(
        &mut self,
        t: &Table,
        src: &Arc<Source>,
        stem: &str,
        rel: String,
        drift: &DriftDefaults,
    ) -> Option<(App, Span, AppSpans)> {
        let file_span = Span::file(src);
        let before = self.diags.iter().filter(|d| d.is_error()).count();
        let (name, name_span) = match t.str("name") {
            Some((n, span)) => (n.to_string(), span.clone()),
            None => (stem.to_string(), file_span.clone()),
        };
        if !is_name(&name) {
            let what = if t.get("name").is_some() {
                "name"
            } else {
                "name (from the file name)"
            };
            self.err(
                &name_span,
                "name",
                format!(
                    "expected an app {what} matching ^[a-z][a-z0-9-]{{0,62}}$, found {}",
                    diag::found(&name)
                ),
            );
        }
        let description = t.str("description").and_then(|(d, span)| {
            if let Some(c) = d.chars().find(|c| c.is_control()) {
                self.err(span, "description", format!("expected one line of text without control characters, found U+{:04X} in {}", c as u32, diag::found(d)));
                None
            } else if d.ends_with('\\') {
                self.err(span, "description", format!("expected a description that does not end with `\\` (a unit file would continue the line), found {}", diag::found(d)));
                None
            } else {
                Some(d.trim().to_string())
            }
        });

        let container = t
            .table("container")
            .and_then(|c| self.container(c, &self.span_of(t, "container", &file_span)));
        let health = t
            .table("health")
            .map(|h| self.health(h, &self.span_of(t, "health", &file_span)));

        let mut requires = Vec::new();
        let mut wants = Vec::new();
        let mut spans = AppSpans {
            file: file_span.clone(),
            requires: Vec::new(),
            wants: Vec::new(),
            networks: Vec::new(),
            networks_key: self.span_of(t, "container", &file_span),
            container_name: None,
            jobs: Vec::new(),
            volumes: Vec::new(),
            on_remove: None,
        };
        if let Some(d) = t.table("depends") {
            for (s, span) in d.strings("requires") {
                requires.push(s.to_string());
                spans.requires.push(span.clone());
            }
            for (s, span) in d.strings("wants") {
                wants.push(s.to_string());
                spans.wants.push(span.clone());
            }
        }
        if let Some(c) = t.table("container") {
            spans.networks = c.items("networks").iter().map(|n| n.span.clone()).collect();
            spans.container_name = c.str("container_name").map(|(_, sp)| sp.clone());
            for (v, span) in c.strings("volumes") {
                if let Ok(VolumeMount {
                    source: VolumeSource::Named(n),
                    ..
                }) = parse_volume(v)
                {
                    spans.volumes.push((n, span.clone()));
                }
            }
            if let Some(n) = c.get("networks") {
                spans.networks_key = n.span.clone();
            }
        }

        let mut update = Update {
            order: UpdateOrder::StopFirst,
            health_deadline: 120_000_000,
            rollback_auto: true,
            purge_data: false,
            drift: drift.mode.unwrap_or_default(),
            drift_ignore: drift.ignore.clone(),
        };
        if let Some(u) = t.table("update") {
            if let Some(("start-first", _)) = u.str("order") {
                update.order = UpdateOrder::StartFirst;
            }
            if let Some(d) = self.duration(u, "health_deadline", "update") {
                update.health_deadline = d;
            }
            if let Some(("manual", _)) = u.str("rollback") {
                update.rollback_auto = false;
            }
            if let Some(("purge-data", span)) = u.str("on_remove") {
                update.purge_data = true;
                spans.on_remove = Some(span.clone());
            }
            if let Some(mode) = drift_mode(u) {
                update.drift = mode;
            }
            update.drift_ignore = self.drift_ignore(u, "update", update.drift_ignore);
        }

        let mut release = Release::default();
        if let Some(r) = t.table("release") {
            release.semver = matches!(r.str("track"), Some(("semver", _)));
            release.allow_prerelease = r.bool("allow_prerelease").unwrap_or(false);
            if let Some((c, span)) = r.str("constraint") {
                match semver::VersionReq::parse(c) {
                    Ok(_) => release.constraint = Some(c.to_string()),
                    Err(e) => self.err(
                        span,
                        "release.constraint",
                        format!(
                            "expected a semver requirement such as \"^0.18\" ({e}), found {}",
                            diag::found(c)
                        ),
                    ),
                }
            }
            if !release.semver && (release.constraint.is_some() || release.allow_prerelease) {
                let span = self.span_of(t, "release", &file_span);
                self.err(
                    &span,
                    "release.track",
                    "`constraint` and `allow_prerelease` need `track = \"semver\"`".to_string(),
                );
            }
            if release.semver
                && let Some(c) = &container
                && c.image.digest.is_some()
            {
                let span = self.span_of(t, "release", &file_span);
                self.err(&span, "release.track", "an image pinned by digest is never upgraded by sweeps; remove the digest or set `track = \"none\"`".to_string());
            }
        }

        let mut jobs = Vec::new();
        let mut job_names = BTreeSet::new();
        for (i, (j, jspan)) in t.tables("jobs").into_iter().enumerate() {
            let path = format!("jobs[{i}]");
            let Some((jname, nspan)) = j.str("name") else {
                continue;
            };
            if !is_name(jname) {
                self.err(
                    nspan,
                    &format!("{path}.name"),
                    format!(
                        "expected a job name matching ^[a-z][a-z0-9-]{{0,62}}$, found {}",
                        diag::found(jname)
                    ),
                );
            } else if !job_names.insert(jname.to_string()) {
                self.err(
                    nspan,
                    &format!("{path}.name"),
                    format!("job name {} is used twice in this app", diag::found(jname)),
                );
            }
            let schedule = match j.str("schedule") {
                Some((s, span)) => match validate_calendar(s) {
                    Ok(()) => s.to_string(),
                    Err(e) => {
                        self.err(
                            span,
                            &format!("{path}.schedule"),
                            format!("{}, found {}", e.message, diag::found(s)),
                        );
                        String::new()
                    }
                },
                None => String::new(),
            };
            let command = self.command(j, "command", &path);
            if let Some(cmd) = &command {
                let first = &cmd[0];
                if first.is_empty() || first.starts_with(['-', '@', ':', '+', '!', '|']) {
                    let span = j
                        .get("command")
                        .map(|n| n.span.clone())
                        .unwrap_or_else(|| jspan.clone());
                    self.err(&span, &format!("{path}.command[0]"), format!("expected a program name or absolute path (not empty, not starting with one of - @ : + ! |), found {}", diag::found(first)));
                }
            }
            spans.jobs.push(nspan.clone());
            let job = Job {
                name: jname.to_string(),
                schedule,
                persistent: j.bool("persistent").unwrap_or(true),
                randomized_delay: self.duration(j, "randomized_delay", &path),
                timeout: self.duration(j, "timeout", &path),
                command: command.unwrap_or_default(),
            };
            jobs.push(job);
        }

        let mut hooks = Vec::new();
        if let Some(h) = t.table("hooks") {
            for kind in HookKind::ALL {
                if let Some(ht) = h.table(kind.key()) {
                    let app_entrypoint = container.as_ref().is_some_and(|c| c.entrypoint.is_some());
                    hooks.push(self.hook(kind, ht, app_entrypoint));
                }
            }
        }
        // Each hook's container is named after the app's: the name must
        // stay valid with `-hook-<kind>` added (only a long
        // `container_name` can break it). Said once, for the longest.
        if let Some(c) = &container {
            let base = c.container_name.as_deref().unwrap_or(&name);
            let bad = hooks
                .iter()
                .map(|h| App::hook_container_name(base, h.kind))
                .filter(|n| !is_object_name(n))
                .max_by_key(String::len);
            if let (Some(bad), Some(span)) = (bad, &spans.container_name) {
                self.err(span, "container.container_name", format!(
                    "with `{}` added, for a hook's container, the name must stay a valid container name of at most 253 characters; found {} characters",
                    &bad[base.len()..],
                    bad.len()
                ));
            }
        }

        let after = self.diags.iter().filter(|d| d.is_error()).count();
        let container = container?;
        if after > before {
            return None;
        }
        let app = App {
            name,
            description,
            source: rel,
            container,
            health,
            requires,
            wants,
            update,
            release,
            jobs,
            hooks,
        };
        Some((app, name_span, spans))
    }

    /// `[hooks.<kind>]`: `command` and `entrypoint` in exec form, `image`
    /// checked as the container's, `timeout` (default 5m) and `retries`
    /// (default 0). The command follows the image in `podman run`, which
    /// passes it on whole: unlike a job's, it may start with `-` (an
    /// entrypoint's arguments), but with no entrypoint at all (`app_entrypoint`:
    /// whether the container sets one) its program cannot be empty.
    fn hook(&mut self, kind: HookKind, h: &Table, app_entrypoint: bool) -> Hook {
        let path = format!("hooks.{}", kind.key());
        let command = self.command(h, "command", &path);
        let entrypoint = self.command(h, "entrypoint", &path);
        if let Some(cmd) = &command
            && cmd[0].is_empty()
            && entrypoint.is_none()
            && !app_entrypoint
            && let Some((_, span)) = h.strings("command").first()
        {
            self.err(
                span,
                &format!("{path}.command[0]"),
                "expected a program (there is no entrypoint), found an empty string".to_string(),
            );
        }
        if entrypoint.is_some()
            && let Some((first, span)) = h.strings("entrypoint").first()
            && first.is_empty()
        {
            self.err(
                span,
                &format!("{path}.entrypoint[0]"),
                "expected a program, found an empty string".to_string(),
            );
        }
        let image = h.str("image").and_then(|(s, span)| {
            parse_image(s)
                .map_err(|e| {
                    self.err(
                        span,
                        &format!("{path}.image"),
                        format!("{e}, found {}", diag::found(s)),
                    )
                })
                .ok()
        });
        let retries = match h.get("retries") {
            Some(n) => match n.value {
                manifest::NodeValue::Int(x) => u32::try_from(x).unwrap_or_else(|_| {
                    self.err(
                        &n.span,
                        &format!("{path}.retries"),
                        format!(
                            "expected a number of further attempts, 0 to {}, found {x}",
                            u32::MAX
                        ),
                    );
                    0
                }),
                _ => 0,
            },
            None => 0,
        };
        Hook {
            kind,
            command: command.unwrap_or_default(),
            entrypoint,
            image,
            timeout: self
                .duration(h, "timeout", &path)
                .unwrap_or(Hook::DEFAULT_TIMEOUT),
            retries,
        }
    }

    /// `[container]`: every value checked; `None` when the image is
    /// missing or invalid (the other errors are reported either way).
    fn container(&mut self, c: &Table, at: &Span) -> Option<Container> {
        let image = self.parsed(c, "image", parse_image);
        let (entrypoint, command) = self.exec_form(c, at);
        let (user, group) = self.user(c).unwrap_or_default();
        let ports = self.each_parsed(c, "ports", parse_port);
        let volumes = self.each_parsed(c, "volumes", parse_volume);
        let env = self.env(c);
        let env_files = self.each_parsed(c, "env_files", |s| check_path(s).map(|()| s.to_string()));
        let secrets = c
            .tables("secrets")
            .into_iter()
            .enumerate()
            .filter_map(|(i, (s, span))| self.secret(s, span, &format!("container.secrets[{i}]")))
            .collect();
        let (networks, network_options) = self.networks(c);
        let container_name = c.str("container_name").and_then(|(n, sp)| {
            self.object_name(n, sp, "container.container_name")
                .then(|| n.to_string())
        });
        let memory = self.parsed(c, "memory", parse_memory);
        let cpus = self.cpus(c);
        let add_hosts = self.each_parsed(c, "add_hosts", parse_add_host);
        let labels = self.container_labels(c, at);
        let restart = match c.str("restart") {
            Some(("on-failure", _)) => Restart::OnFailure,
            Some(("no", _)) => Restart::No,
            _ => Restart::Always,
        };
        let auto_update = match c.str("auto_update") {
            Some(("registry", _)) => AutoUpdate::Registry,
            Some(("local", _)) => AutoUpdate::Local,
            _ => AutoUpdate::None,
        };
        let stop_timeout = self.duration(c, "stop_timeout", "container");
        let shm_size = self.parsed(c, "shm_size", parse_memory);
        let security_opt = self.security_opt(c);
        let ulimits = self.ulimits(c);
        let cap_add = self.capabilities(c, "cap_add");
        let cap_drop = self.capabilities(c, "cap_drop");
        let tmpfs = self.each_parsed(c, "tmpfs", parse_tmpfs);
        let host_network = networks.iter().any(|n| n == "host");
        let sysctls = self.sysctls(c, host_network);
        let dns = self.each_parsed(c, "dns", |s| {
            s.parse::<IpAddr>()
                .map_err(|_| "expected an IP address of a DNS server".to_string())
        });
        let hostname = self.parsed(c, "hostname", parse_hostname);
        let devices = self.each_parsed(c, "devices", parse_device);
        let stop_signal = self.parsed(c, "stop_signal", parse_signal);
        let pids_limit = self.pids_limit(c);
        Some(Container {
            image: image?,
            command,
            entrypoint,
            user,
            group,
            ports,
            volumes,
            env,
            env_files,
            secrets,
            networks,
            memory,
            cpus,
            add_hosts,
            labels,
            read_only: c.bool("read_only").unwrap_or(false),
            restart,
            stop_timeout,
            auto_update,
            shm_size,
            security_opt,
            ulimits,
            cap_add,
            cap_drop,
            tmpfs,
            sysctls,
            dns,
            hostname,
            privileged: c.bool("privileged").unwrap_or(false),
            devices,
            init: c.bool("init").unwrap_or(false),
            stop_signal,
            pids_limit,
            container_name,
            network_options,
        })
    }

    /// `container.networks`: each a name, or a table `{ name, aliases,
    /// ipv4, ipv6 }`. Whether the networks exist, and the addresses lie in
    /// them, is checked for the whole fleet.
    fn networks(&mut self, c: &Table) -> (Vec<String>, BTreeMap<String, NetworkOptions>) {
        let mut networks = Vec::new();
        let mut options = BTreeMap::new();
        for (i, node) in c.items("networks").iter().enumerate() {
            let t = match &node.value {
                manifest::NodeValue::Str(s) => {
                    networks.push(s.clone());
                    continue;
                }
                manifest::NodeValue::Table(t) => t,
                _ => continue,
            };
            let key = format!("container.networks[{i}]");
            let Some((name, _)) = t.str("name") else {
                continue;
            };
            networks.push(name.to_string());
            let mut o = NetworkOptions::default();
            for (j, (a, aspan)) in t.strings("aliases").into_iter().enumerate() {
                if !is_dns_name(a) {
                    self.err(aspan, &format!("{key}.aliases[{j}]"), format!("expected a DNS name (labels of letters, digits, `-` and `_`, each 1 to 63 characters and not starting or ending with `-`, separated by `.`), found {}", diag::found(a)));
                } else if !o.aliases.iter().any(|x| x == a) {
                    o.aliases.push(a.to_string());
                }
            }
            if let Some((v, vspan)) = t.str("ipv4") {
                match v.parse::<std::net::Ipv4Addr>() {
                    Ok(ip) => o.ipv4 = Some(ip),
                    Err(_) => self.err(
                        vspan,
                        &format!("{key}.ipv4"),
                        format!("expected an IPv4 address, found {}", diag::found(v)),
                    ),
                }
            }
            if let Some((v, vspan)) = t.str("ipv6") {
                match v.parse::<std::net::Ipv6Addr>() {
                    Ok(ip) => o.ipv6 = Some(ip),
                    Err(_) => self.err(
                        vspan,
                        &format!("{key}.ipv6"),
                        format!("expected an IPv6 address, found {}", diag::found(v)),
                    ),
                }
            }
            if o == NetworkOptions::default() {
                continue;
            }
            if name == "host" {
                self.err(
                    &node.span,
                    &key,
                    "the \"host\" network has no aliases or addresses of its own (the container shares the host's)".to_string(),
                );
                continue;
            }
            options.insert(name.to_string(), o);
        }
        (networks, options)
    }

    /// `container.security_opt`, each option kind at most once.
    fn security_opt(&mut self, c: &Table) -> Vec<SecurityOpt> {
        let opts = self.each_parsed(c, "security_opt", parse_security_opt);
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (i, (o, (_, span))) in opts.into_iter().zip(c.strings("security_opt")).enumerate() {
            let repeatable = matches!(o, SecurityOpt::Mask(_) | SecurityOpt::Unmask(_));
            if !repeatable && !seen.insert(o.kind()) {
                self.err(
                    span,
                    &format!("container.security_opt[{i}]"),
                    format!(
                        "`{}` is given more than once; Podman keeps only one",
                        o.kind()
                    ),
                );
                continue;
            }
            out.push(o);
        }
        out
    }

    /// `container.ulimits`: known resource names, each an integer (soft
    /// and hard) or `{ soft, hard }`.
    fn ulimits(&mut self, c: &Table) -> BTreeMap<String, Ulimit> {
        let mut out = BTreeMap::new();
        let Some(t) = c.table("ulimits") else {
            return out;
        };
        for (name, e) in &t.entries {
            let key = format!("container.ulimits.{name}");
            if !ULIMITS.contains(&name.as_str()) {
                self.err(
                    &e.key_span,
                    &key,
                    format!(
                        "expected a resource name, one of {}, found {}",
                        ULIMITS.join(", "),
                        diag::found(name)
                    ),
                );
                continue;
            }
            let limits = match &e.node.value {
                manifest::NodeValue::Int(n) => Some((*n, *n)),
                manifest::NodeValue::Table(lt) => match (lt.get("soft"), lt.get("hard")) {
                    (Some(s), Some(h)) => match (&s.value, &h.value) {
                        (manifest::NodeValue::Int(s), manifest::NodeValue::Int(h)) => {
                            Some((*s, *h))
                        }
                        _ => None,
                    },
                    _ => None,
                },
                _ => None,
            };
            if let Some((soft, hard)) = limits {
                match Ulimit::new(soft, hard) {
                    Ok(u) => {
                        out.insert(name.clone(), u);
                    }
                    Err(msg) => self.err(&e.node.span, &key, msg),
                }
            }
        }
        out
    }

    /// `container.cap_add` / `cap_drop`, normalised (`CAP_NET_ADMIN`).
    fn capabilities(&mut self, c: &Table, key: &str) -> Vec<String> {
        let mut caps = self.each_parsed(c, key, parse_capability);
        let n = caps.len();
        caps.dedup();
        if caps.len() != n {
            let span = c.get(key).map(|n| n.span.clone());
            if let Some(span) = span {
                self.err(
                    &span,
                    &format!("container.{key}"),
                    "a capability is listed twice".to_string(),
                );
            }
        }
        caps
    }

    /// `container.sysctls`; a `net.*` one with the host's network is
    /// refused, as Podman refuses it when the container starts.
    fn sysctls(&mut self, c: &Table, host_network: bool) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (k, ks, v, vs) in c.string_map("sysctls") {
            let key = format!("container.sysctls.{k}");
            if let Err(e) = check_sysctl_key(k) {
                self.err(ks, &key, format!("{e}, found {}", diag::found(k)));
                continue;
            }
            if host_network && k.starts_with("net.") {
                self.err(
                    ks,
                    &key,
                    format!(
                        "a net.* sysctl cannot be set for a container on the host's network (`networks` has \"host\"), found {}",
                        diag::found(k)
                    ),
                );
                continue;
            }
            if let Err(e) = check_sysctl_value(v) {
                self.err(vs, &key, format!("{e}, found {}", diag::found(v)));
                continue;
            }
            out.insert(k.to_string(), v.to_string());
        }
        out
    }

    fn pids_limit(&mut self, c: &Table) -> Option<i64> {
        let n = c.get("pids_limit")?;
        match n.value {
            manifest::NodeValue::Int(x) if x == -1 || x >= 1 => Some(x),
            manifest::NodeValue::Int(x) => {
                self.err(
                    &n.span,
                    "container.pids_limit",
                    format!("expected -1 (unlimited) or a number of processes ≥ 1, found {x}"),
                );
                None
            }
            _ => None,
        }
    }

    /// `container.<key>` parsed by `parse`; an error names the value.
    fn parsed<T>(
        &mut self,
        c: &Table,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let (s, span) = c.str(key)?;
        parse(s)
            .map_err(|e| {
                self.err(
                    span,
                    &format!("container.{key}"),
                    format!("{e}, found {}", diag::found(s)),
                )
            })
            .ok()
    }

    /// Each string of the array `container.<key>` parsed by `parse`; the
    /// ones that fail are reported (with their index) and left out.
    fn each_parsed<T>(
        &mut self,
        c: &Table,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Vec<T> {
        let mut out = Vec::new();
        for (i, (s, span)) in c.strings(key).into_iter().enumerate() {
            match parse(s) {
                Ok(v) => out.push(v),
                Err(e) => self.err(
                    span,
                    &format!("container.{key}[{i}]"),
                    format!("{e}, found {}", diag::found(s)),
                ),
            }
        }
        out
    }

    /// `container.entrypoint` and `container.command`, with what Quadlet
    /// cannot carry through `Exec=` reported.
    fn exec_form(&mut self, c: &Table, at: &Span) -> (Option<Vec<String>>, Option<Vec<String>>) {
        let p = "container";
        let entrypoint = self.command(c, "entrypoint", p);
        let command = self.command(c, "command", p);
        if let Some(cmd) = &command {
            let span = c
                .get("command")
                .map(|n| n.span.clone())
                .unwrap_or_else(|| at.clone());
            for (i, (arg, aspan)) in c.strings("command").into_iter().enumerate() {
                self.quadlet_text(arg, aspan, || format!("container.command[{i}]"));
            }
            if entrypoint.is_none()
                && let Some(bad) = cmd.iter().find(|a| a.is_empty() || a.as_str() == ";")
            {
                self.err(&span, "container.command", format!(
                        "Quadlet cannot pass the argument {} through `Exec=` (an empty argument truncates the command, a lone `;` splits it)",
                        diag::found(bad)
                    ));
                self.diags.last_mut().unwrap().help = Some("set `container.entrypoint` as well: windlass then passes the whole command as one JSON entrypoint, which carries any argument".into());
            }
        }
        // The program itself must not be empty (later arguments may be).
        if entrypoint.is_some()
            && let Some((first, span)) = c.strings("entrypoint").first()
            && first.is_empty()
        {
            self.err(
                span,
                "container.entrypoint[0]",
                "expected a program, found an empty string".to_string(),
            );
        }
        (entrypoint, command)
    }

    /// `container.user` as `(user, group)`; `None` when absent or invalid.
    fn user(&mut self, c: &Table) -> Option<(Option<String>, Option<String>)> {
        let (u, span) = c.str("user")?;
        let (user, group) = match u.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (u, None),
        };
        let ok_part = |s: &str| {
            !s.is_empty()
                && s.len() <= 32
                && (s.bytes().all(|b| b.is_ascii_digit())
                    || (s.as_bytes()[0].is_ascii_alphabetic() || s.as_bytes()[0] == b'_')
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')))
        };
        if ok_part(user) && group.is_none_or(ok_part) {
            Some((Some(user.to_string()), group.map(str::to_string)))
        } else {
            self.err(
                span,
                "container.user",
                format!(
                    "expected `uid[:gid]` or a user name, found {}",
                    diag::found(u)
                ),
            );
            None
        }
    }

    fn env(&mut self, c: &Table) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for (k, ks, v, vs) in c.string_map("env") {
            if !is_env_key(k) {
                self.err(ks, &format!("container.env.{k}"), format!("expected an environment variable name matching ^[A-Za-z_][A-Za-z0-9_]*$, found {}", diag::found(k)));
                continue;
            }
            self.quadlet_text(v, vs, || format!("container.env.{k}"));
            env.insert(k.to_string(), v.to_string());
        }
        env
    }

    /// One `container.secrets[i]` (`key`); `None` when it has no valid
    /// name or target (reported).
    fn secret(&mut self, s: &Table, span: &Span, key: &str) -> Option<SecretRef> {
        let (name, nspan) = s.str("name")?;
        let name_ok = if name.starts_with('/') {
            match check_path(name) {
                Ok(()) => true,
                Err(e) => {
                    self.err(
                        nspan,
                        &format!("{key}.name"),
                        format!("{e}, found {}", diag::found(name)),
                    );
                    false
                }
            }
        } else {
            self.object_name(name, nspan, &format!("{key}.name"))
        };
        let target = self.secret_target(s, name, key);
        let mode = self.secret_mode(s, key);
        if matches!(target, Some(SecretTarget::Env(_))) && mode.is_some() {
            self.err(
                span,
                &format!("{key}.mode"),
                "a mode applies only to a secret mounted as a file".to_string(),
            );
        }
        match (name_ok, target) {
            (true, Some(target)) => Some(SecretRef {
                name: name.to_string(),
                target,
                mode,
            }),
            _ => None,
        }
    }

    /// Where secret `name` goes: a file (by default `/run/secrets/<base
    /// name>`), or, for a podman secret, an environment variable.
    fn secret_target(&mut self, s: &Table, name: &str, key: &str) -> Option<SecretTarget> {
        let base = name.rsplit('/').next().unwrap_or(name).to_string();
        match s.str("target") {
            None => Some(SecretTarget::File(format!("/run/secrets/{base}"))),
            Some((t, tspan)) if t.starts_with('/') => match check_path(t) {
                Ok(()) => Some(SecretTarget::File(t.to_string())),
                Err(e) => {
                    self.err(
                        tspan,
                        &format!("{key}.target"),
                        format!("{e}, found {}", diag::found(t)),
                    );
                    None
                }
            },
            Some((t, _)) if is_env_key(t) && !name.starts_with('/') => {
                Some(SecretTarget::Env(t.to_string()))
            }
            Some((t, tspan)) => {
                self.err(tspan, &format!("{key}.target"), format!("expected an absolute path in the container (or, for a podman secret, an environment variable name), found {}", diag::found(t)));
                None
            }
        }
    }

    /// A secret file's octal mode (`"0400"`).
    fn secret_mode(&mut self, s: &Table, key: &str) -> Option<u32> {
        let (m, mspan) = s.str("mode")?;
        match u32::from_str_radix(m, 8) {
            Ok(v) if v <= 0o777 && !m.is_empty() && m.len() <= 4 => Some(v),
            _ => {
                self.err(
                    mspan,
                    &format!("{key}.mode"),
                    format!(
                        "expected an octal file mode such as \"0400\", found {}",
                        diag::found(m)
                    ),
                );
                None
            }
        }
    }

    fn cpus(&mut self, c: &Table) -> Option<f64> {
        let n = c.get("cpus")?;
        match n.value {
            manifest::NodeValue::Float(x) if x > 0.0 && x.is_finite() && x <= 4096.0 => Some(x),
            manifest::NodeValue::Float(x) => {
                self.err(
                    &n.span,
                    "container.cpus",
                    format!("expected a number of CPUs greater than 0 (at most 4096), found {x}"),
                );
                None
            }
            _ => None,
        }
    }

    /// `container.labels`, refusing the `io.windlass.` ones windlass sets.
    fn container_labels(&mut self, c: &Table, at: &Span) -> BTreeMap<String, String> {
        let labels = self.labels(c, "container");
        for k in labels.keys() {
            if k.starts_with("io.windlass.") {
                let span = c
                    .get("labels")
                    .map(|n| n.span.clone())
                    .unwrap_or_else(|| at.clone());
                self.err(
                    &span,
                    &format!("container.labels.{k}"),
                    "labels under `io.windlass.` are reserved for windlass".to_string(),
                );
            }
        }
        labels
    }

    fn health(&mut self, h: &Table, at: &Span) -> Health {
        let cmd = self.command(h, "cmd", "health");
        let retries = match h.get("retries") {
            Some(n) => match n.value {
                manifest::NodeValue::Int(r) if (1..=i64::from(u32::MAX)).contains(&r) => {
                    Some(r as u32)
                }
                manifest::NodeValue::Int(r) => {
                    self.err(
                        &n.span,
                        "health.retries",
                        format!("expected an integer ≥ 1, found {r}"),
                    );
                    None
                }
                _ => None,
            },
            None => None,
        };
        let http = h.str("http").and_then(|(u, span)| {
            if is_loopback_url(u) {
                Some(u.to_string())
            } else {
                self.err(span, "health.http", format!("expected an http:// or https:// URL on loopback (127.0.0.0/8, [::1] or localhost), found {}", diag::found(u)));
                None
            }
        });
        if cmd.is_none() && http.is_none() && h.get("cmd").is_none() && h.get("http").is_none() {
            self.err(
                at,
                "health",
                "a health section needs `cmd` or `http`".to_string(),
            );
        }
        Health {
            cmd,
            interval: self.duration(h, "interval", "health"),
            timeout: self.duration(h, "timeout", "health"),
            start_period: self.duration(h, "start_period", "health"),
            retries,
            http,
        }
    }

    /// The rules that span the fleet. They fall in two halves that read
    /// nothing the other writes, so the halves run side by side; their
    /// diagnostics are kept in the order a sequential run gives (the
    /// first half's, then the second's).
    fn fleet_rules(
        &mut self,
        apps: &[(&App, &Span, &AppSpans)],
        networks: &BTreeMap<String, Network>,
        volumes: &mut BTreeMap<String, Volume>,
    ) {
        // Named volumes referenced by apps become volume units too.
        for (app, _, _) in apps {
            for v in &app.container.volumes {
                if let VolumeSource::Named(n) = &v.source {
                    volumes.entry(n.clone()).or_default();
                }
            }
        }
        let volumes = &*volumes;
        let (names_and_units, references) = crate::par::join(
            || {
                let mut diags = Vec::new();
                Builder { diags: &mut diags }.name_and_unit_rules(apps);
                diags
            },
            || {
                let mut diags = Vec::new();
                Builder { diags: &mut diags }.reference_rules(apps, networks, volumes);
                diags
            },
        );
        self.diags.extend(names_and_units);
        self.diags.extend(references);
    }

    /// Unique app names, `purge-data` on shared volumes, unique unit
    /// names, names of distributions' services.
    fn name_and_unit_rules(&mut self, apps: &[(&App, &Span, &AppSpans)]) {
        // Unique app names.
        let mut by_name: BTreeMap<&str, &Span> = BTreeMap::new();
        let mut duplicate = vec![false; apps.len()];
        for (i, (app, name_span, _)) in apps.iter().enumerate() {
            if let Some(first) = by_name.get(app.name.as_str()) {
                duplicate[i] = true;
                let (l, c) = first.line_col();
                self.err(
                    name_span,
                    "name",
                    format!(
                        "app name {} is already used by {}:{l}:{c}",
                        diag::found(&app.name),
                        first.path().display()
                    ),
                );
            } else {
                by_name.insert(&app.name, name_span);
            }
        }
        // `update.on_remove = "purge-data"` removes the app's named volumes
        // with the app: never a volume another app also mounts. Each app's
        // first mount of each volume, by volume, in app order.
        let mut mounts: std::collections::HashMap<&str, Vec<(usize, &Span)>> =
            std::collections::HashMap::new();
        if apps.iter().any(|(_, _, spans)| spans.on_remove.is_some()) {
            for (k, (_, _, spans)) in apps.iter().enumerate() {
                for (n, mount) in &spans.volumes {
                    let list = mounts.entry(n.as_str()).or_default();
                    if list.last().is_none_or(|(last, _)| *last != k) {
                        list.push((k, mount));
                    }
                }
            }
        }
        for (app, _, spans) in apps {
            let Some(at) = &spans.on_remove else {
                continue;
            };
            let mut seen = BTreeSet::new();
            for (n, _) in &spans.volumes {
                if !seen.insert(n) {
                    continue;
                }
                for &(k, mount) in mounts
                    .get(n.as_str())
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    let other = &apps[k].0;
                    if other.name == app.name {
                        continue;
                    }
                    let (l, c) = mount.line_col();
                    self.diags.push(
                        Diagnostic::error(
                            at.clone(),
                            "update.on_remove",
                            format!(
                                "\"purge-data\" would remove volume `{n}` with app `{}`, but app `{}` also mounts it ({}:{l}:{c}); shared data is never purged",
                                app.name,
                                other.name,
                                mount.path().display()
                            ),
                        )
                        .with_help(format!(
                            "keep the data (`on_remove = \"keep-data\"`), or give app `{}` a volume of its own",
                            app.name
                        )),
                    );
                }
            }
        }
        // Every systemd unit name the fleet produces must be unique, and
        // none may be a unit the host already has (`RESERVED_UNITS`). What
        // owns a unit is spelt out only for a message.
        #[derive(Clone, Copy)]
        enum Owner<'a> {
            App(&'a str),
            OciApp(&'a str),
            Job(&'a str, &'a str),
        }
        impl Owner<'_> {
            fn describe(self) -> String {
                match self {
                    Owner::App(a) => format!("app `{a}`"),
                    Owner::OciApp(a) => {
                        format!("app `{a}` (with the NixOS oci-containers backend)")
                    }
                    Owner::Job(j, a) => format!("job `{j}` of app `{a}`"),
                }
            }
        }
        let reserved: std::collections::HashMap<&str, &str> =
            RESERVED_UNITS.iter().copied().collect();
        let mut units: std::collections::HashMap<String, Owner> =
            std::collections::HashMap::with_capacity(apps.len() * 4);
        fn claim<'a>(
            units: &mut std::collections::HashMap<String, Owner<'a>>,
            reserved: &std::collections::HashMap<&str, &str>,
            unit: String,
            what: Owner<'a>,
            key: &dyn Fn() -> String,
            span: &Span,
            diags: &mut Vec<Diagnostic>,
        ) -> bool {
            let clash = if let Some(owner) = reserved.get(unit.as_str()) {
                format!("which {owner}")
            } else if let Some(prev) = units.get(&unit) {
                format!("which {} already is", prev.describe())
            } else {
                units.insert(unit, what);
                return true;
            };
            diags.push(Diagnostic::error(
                span.clone(),
                key(),
                format!(
                    "{} would be the systemd unit `{unit}`, {clash}",
                    what.describe()
                ),
            ));
            false
        }
        for (i, (app, name_span, spans)) in apps.iter().enumerate() {
            if duplicate[i] {
                continue; // already reported as a duplicate name
            }
            // The NixOS oci-containers backend runs the app as the second.
            let name_key = || "name".to_string();
            let _ = claim(
                &mut units,
                &reserved,
                app.service_name(),
                Owner::App(&app.name),
                &name_key,
                name_span,
                self.diags,
            ) && claim(
                &mut units,
                &reserved,
                format!("podman-{}.service", app.name),
                Owner::OciApp(&app.name),
                &name_key,
                name_span,
                self.diags,
            );
            for (j, job) in app.jobs.iter().enumerate() {
                let unit = format!("{}-{}", app.name, job.name);
                let what = Owner::Job(&job.name, &app.name);
                let key = || format!("jobs[{j}].name");
                let span = spans.jobs.get(j).unwrap_or(&spans.file);
                let _ = claim(
                    &mut units,
                    &reserved,
                    format!("{unit}.service"),
                    what,
                    &key,
                    span,
                    self.diags,
                ) && claim(
                    &mut units,
                    &reserved,
                    format!("{unit}.timer"),
                    what,
                    &key,
                    span,
                    self.diags,
                );
            }
        }
        // Services a distribution ships under the same name: not an error
        // (the host may not have the package), but the app's unit would
        // hide the distribution's, so say so.
        for (i, (app, name_span, _)) in apps.iter().enumerate() {
            if duplicate[i] {
                continue;
            }
            if let Some(shippers) = well_known_unit(&app.name) {
                self.diags.push(
                    Diagnostic::warning(
                        (*name_span).clone(),
                        "name",
                        format!(
                            "app `{}` has the name of a service {shippers} ship{}: on a host that has it, the app's unit `{}.service` (or Shepherd service `{}`) would hide the distribution's",
                            app.name,
                            if shippers.contains(" and ") { "" } else { "s" },
                            app.name,
                            app.name
                        ),
                    )
                    .with_help(format!(
                        "rename the app, e.g. `name = \"myproject-{}\"` (`windlass import --prefix PFX` prefixes every imported app)",
                        app.name
                    )),
                );
            }
        }
        // The NixOS oci-containers backend creates networks and volumes
        // with `windlass-network-<n>` / `windlass-volume-<n>`.
        for (app, _, spans) in apps {
            for (j, job) in app.jobs.iter().enumerate() {
                let unit = format!("{}-{}", app.name, job.name);
                if unit.starts_with("windlass-network-") || unit.starts_with("windlass-volume-") {
                    let span = spans.jobs.get(j).unwrap_or(&spans.file);
                    self.err(
                        span,
                        &format!("jobs[{j}].name"),
                        format!(
                            "job `{}` of app `{}` would be the systemd unit `{unit}.service`, a name the NixOS module keeps for its networks and volumes",
                            job.name, app.name
                        ),
                    );
                }
            }
        }
    }

    /// Names of the units of volumes and networks, unique container names,
    /// dependencies, networks and static addresses, dependency cycles.
    fn reference_rules(
        &mut self,
        apps: &[(&App, &Span, &AppSpans)],
        networks: &BTreeMap<String, Network>,
        volumes: &BTreeMap<String, Volume>,
    ) {
        // Quadlet names the services of volumes and networks `<n>-volume`
        // and `<n>-network`; an app must not take those names.
        for (app, name_span, _) in apps {
            let what = if let Some(n) = app.name.strip_suffix("-volume")
                && volumes.contains_key(n)
            {
                format!("volume `{n}`")
            } else if let Some(n) = app.name.strip_suffix("-network")
                && networks.contains_key(n)
            {
                format!("network `{n}`")
            } else {
                continue;
            };
            self.err(
                name_span,
                "name",
                format!(
                    "app `{}` would share the systemd unit `{}.service` with {what}",
                    app.name, app.name
                ),
            );
        }
        // Container names (the app's, or `container_name`) are unique:
        // Podman would refuse the second container.
        let mut containers: BTreeMap<&str, &str> = BTreeMap::new();
        for (app, _, _) in apps
            .iter()
            .filter(|(a, _, _)| a.container.container_name.is_none())
        {
            containers.insert(&app.name, &app.name);
        }
        for (app, _, spans) in apps {
            let Some(cn) = &app.container.container_name else {
                continue;
            };
            let span = spans.container_name.as_ref().unwrap_or(&spans.file);
            if let Some(other) = containers.insert(cn, &app.name)
                && other != app.name
            {
                let whose = if other == cn {
                    format!("the container of app `{other}` (named after it)")
                } else {
                    format!("the `container_name` of app `{other}`")
                };
                self.err(
                    span,
                    "container.container_name",
                    format!("container name {} is already {whose}", diag::found(cn)),
                );
            }
        }
        let mut addresses: BTreeMap<(String, std::net::IpAddr), String> = BTreeMap::new();
        // Dependencies and networks.
        let names: BTreeSet<&str> = apps.iter().map(|(a, _, _)| a.name.as_str()).collect();
        for (app, _, spans) in apps {
            for (kind, list, dep_spans) in [
                ("requires", &app.requires, &spans.requires),
                ("wants", &app.wants, &spans.wants),
            ] {
                for (i, dep) in list.iter().enumerate() {
                    let span = dep_spans.get(i).unwrap_or(&spans.file);
                    if dep == &app.name {
                        self.err(
                            span,
                            &format!("depends.{kind}[{i}]"),
                            format!("app `{}` cannot depend on itself", app.name),
                        );
                    } else if !names.contains(dep.as_str()) {
                        let known: Vec<&str> = names.iter().copied().collect();
                        self.diags.push(
                            Diagnostic::error(
                                span.clone(),
                                format!("depends.{kind}[{i}]"),
                                format!(
                                    "unknown app {} (no manifest defines it)",
                                    diag::found(dep)
                                ),
                            )
                            .with_help(format!("apps in this fleet: {}", known.join(", "))),
                        );
                    }
                }
            }
            for (i, n) in app.container.networks.iter().enumerate() {
                if n != "host" && PODMAN_NETWORK_MODES.contains(&n.as_str()) {
                    let span = spans.networks.get(i).unwrap_or(&spans.file);
                    let removed = if n == "slirp4netns" {
                        " (and Podman 6 removed slirp4netns: `Network=slirp4netns` is an error there)"
                    } else {
                        ""
                    };
                    self.err(span, &format!("container.networks[{i}]"), format!("{} is a Podman network mode, not a network: windlass offers declared networks and \"host\"{removed}", diag::found(n)));
                } else if n != "host" && !networks.contains_key(n) {
                    let span = spans.networks.get(i).unwrap_or(&spans.file);
                    self.err(span, &format!("container.networks[{i}]"), format!("unknown network {}: declare it as [networks.{n}] in windlass.toml, or use \"host\"", diag::found(n)));
                }
            }
            for (i, n) in app.container.networks.iter().enumerate() {
                let span = spans.networks.get(i).unwrap_or(&spans.file);
                if app.container.networks[..i].contains(n) {
                    self.err(
                        span,
                        &format!("container.networks[{i}]"),
                        format!("network {} is listed twice", diag::found(n)),
                    );
                    continue;
                }
                let (Some(o), Some(net)) = (app.container.network_options.get(n), networks.get(n))
                else {
                    continue;
                };
                for (family, ip) in [
                    ("ipv4", o.ipv4.map(std::net::IpAddr::V4)),
                    ("ipv6", o.ipv6.map(std::net::IpAddr::V6)),
                ] {
                    let Some(ip) = ip else { continue };
                    let key = format!("container.networks[{i}].{family}");
                    match &net.subnet {
                        None => self.err(span, &key, format!("a static address needs the network's subnet: declare `subnet` under [networks.{n}] in windlass.toml (Podman chooses the subnet otherwise)")),
                        Some(sub) if !ip_in_subnet(ip, sub) => self.err(span, &key, format!("{ip} is not in the subnet {sub} of network `{n}`")),
                        Some(_) if net.gateway.as_deref() == Some(ip.to_string().as_str()) => self.err(span, &key, format!("{ip} is the gateway of network `{n}`")),
                        Some(_) => {
                            if let Some(other) = addresses.insert((n.clone(), ip), app.name.clone()) {
                                self.err(span, &key, format!("{ip} on network `{n}` is already the address of app `{other}`"));
                            }
                        }
                    }
                }
            }
            if app.container.networks.iter().any(|n| n == "host")
                && app.container.networks.len() > 1
            {
                self.err(
                    &spans.networks_key,
                    "container.networks",
                    "the \"host\" network cannot be combined with other networks".to_string(),
                );
            }
        }
        // Cycles, reported once each with the whole loop.
        let graph: BTreeMap<&str, Vec<&str>> = apps
            .iter()
            .map(|(a, _, _)| {
                let mut d: Vec<&str> = a
                    .requires
                    .iter()
                    .chain(&a.wants)
                    .map(String::as_str)
                    .filter(|d| names.contains(d) && *d != a.name)
                    .collect();
                d.sort();
                d.dedup();
                (a.name.as_str(), d)
            })
            .collect();
        let mut reported: BTreeSet<Vec<&str>> = BTreeSet::new();
        // Nodes fully explored without finding a loop are never walked again.
        let mut done = BTreeSet::new();
        for start in graph.keys() {
            if done.contains(start) {
                continue;
            }
            let mut stack = vec![*start];
            if let Some(cycle) = find_cycle(&graph, &mut stack, &mut done) {
                let mut key = cycle.clone();
                key.sort();
                if reported.insert(key) {
                    let first = cycle[0];
                    // Point at the entry of the first app that closes the loop.
                    let second = cycle.get(1).copied().unwrap_or(first);
                    let (app, _, spans) = apps.iter().find(|(a, _, _)| a.name == first).unwrap();
                    let (key, span) = app
                        .requires
                        .iter()
                        .zip(&spans.requires)
                        .enumerate()
                        .map(|(i, (d, sp))| (format!("depends.requires[{i}]"), d, sp))
                        .chain(
                            app.wants
                                .iter()
                                .zip(&spans.wants)
                                .enumerate()
                                .map(|(i, (d, sp))| (format!("depends.wants[{i}]"), d, sp)),
                        )
                        .find(|(_, d, _)| d.as_str() == second)
                        .map(|(k, _, sp)| (k, sp.clone()))
                        .unwrap_or_else(|| ("depends".to_string(), spans.file.clone()));
                    let mut path: Vec<&str> = cycle.clone();
                    path.push(first);
                    self.err(
                        &span,
                        &key,
                        format!("dependency cycle: {}", path.join(" → ")),
                    );
                }
            }
        }
    }
}

fn find_cycle<'a>(
    graph: &BTreeMap<&'a str, Vec<&'a str>>,
    stack: &mut Vec<&'a str>,
    done: &mut BTreeSet<&'a str>,
) -> Option<Vec<&'a str>> {
    let mut on_stack: BTreeSet<&str> = stack.iter().copied().collect();
    walk_for_cycle(graph, stack, &mut on_stack, done)
}

/// Depth first from the top of `stack`; `on_stack` holds the same names,
/// so that telling a loop from an unexplored node costs no scan of the
/// stack (a long chain of dependencies stays linear).
fn walk_for_cycle<'a>(
    graph: &BTreeMap<&'a str, Vec<&'a str>>,
    stack: &mut Vec<&'a str>,
    on_stack: &mut BTreeSet<&'a str>,
    done: &mut BTreeSet<&'a str>,
) -> Option<Vec<&'a str>> {
    let node = *stack.last()?;
    for &next in graph.get(node).map(Vec::as_slice).unwrap_or_default() {
        if on_stack.contains(next) {
            let pos = stack.iter().position(|n| *n == next)?;
            let mut cycle = stack[pos..].to_vec();
            // Rotate so the smallest name comes first: one report per loop.
            let min = cycle
                .iter()
                .enumerate()
                .min_by_key(|(_, n)| **n)
                .map(|(i, _)| i)
                .unwrap_or(0);
            cycle.rotate_left(min);
            return Some(cycle);
        }
        if done.contains(next) {
            continue;
        }
        stack.push(next);
        on_stack.insert(next);
        if let Some(c) = walk_for_cycle(graph, stack, on_stack, done) {
            return Some(c);
        }
        on_stack.remove(next);
        stack.pop();
    }
    done.insert(node);
    None
}

fn is_loopback_url(u: &str) -> bool {
    let Some(rest) = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
    else {
        return false;
    };
    if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return false;
    }
    let host = if let Some(r) = authority.strip_prefix('[') {
        r.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    if let Some(port) = authority.rsplit_once("]:").map(|x| x.1).or_else(|| {
        (!authority.starts_with('['))
            .then(|| authority.split_once(':').map(|x| x.1))
            .flatten()
    }) && port.parse::<u16>().is_err()
    {
        return false;
    }
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Units a host already has, which no app or job may become: the same name
/// would shadow or be merged into them (a Quadlet unit in
/// /run/systemd/generator outranks /usr/lib/systemd/system), and on NixOS
/// it fails the build (two unit files of one name) or silently becomes a
/// drop-in of theirs. The evaluation test models the same sources
/// (`tests/nix/nixpkgs-model.nix`).
const RESERVED_UNITS: &[(&str, &str)] = &[
    // Podman's Makefile `install.systemd` (containers/podman).
    ("podman.service", "Podman itself installs"),
    ("podman.socket", "Podman itself installs"),
    ("podman-auto-update.service", "Podman itself installs"),
    ("podman-auto-update.timer", "Podman itself installs"),
    ("podman-restart.service", "Podman itself installs"),
    ("podman-clean-transient.service", "Podman itself installs"),
    // nixpkgs' podman module (virtualisation/podman/default.nix).
    ("podman-prune.service", "the NixOS podman module defines"),
    ("podman-prune.timer", "the NixOS podman module defines"),
    // windlass itself (agent/systemd, modules/nixos).
    ("windlassd.service", "windlass's agent runs as"),
    ("windlass-sweep.service", "windlass ships for its sweeps"),
    ("windlass-sweep.timer", "windlass ships for its sweeps"),
    // systemd's own services and timers that every NixOS system links
    // (nixpkgs systemd.nix `upstreamSystemUnits`, systemd/tmpfiles.nix).
    ("rescue.service", "systemd itself provides"),
    ("debug-shell.service", "systemd itself provides"),
    ("kmod-static-nodes.service", "systemd itself provides"),
    ("systemd-udevd.service", "systemd itself provides"),
    ("systemd-udev-trigger.service", "systemd itself provides"),
    ("systemd-modules-load.service", "systemd itself provides"),
    ("systemd-fsck-root.service", "systemd itself provides"),
    ("systemd-growfs-root.service", "systemd itself provides"),
    ("systemd-remount-fs.service", "systemd itself provides"),
    ("systemd-pstore.service", "systemd itself provides"),
    ("systemd-random-seed.service", "systemd itself provides"),
    ("systemd-rfkill.service", "systemd itself provides"),
    ("systemd-hibernate.service", "systemd itself provides"),
    ("systemd-hybrid-sleep.service", "systemd itself provides"),
    ("systemd-suspend.service", "systemd itself provides"),
    (
        "systemd-suspend-then-hibernate.service",
        "systemd itself provides",
    ),
    ("systemd-reboot.service", "systemd itself provides"),
    ("systemd-poweroff.service", "systemd itself provides"),
    ("systemd-halt.service", "systemd itself provides"),
    ("systemd-kexec.service", "systemd itself provides"),
    (
        "systemd-ask-password-console.service",
        "systemd itself provides",
    ),
    (
        "systemd-ask-password-wall.service",
        "systemd itself provides",
    ),
    ("systemd-sysctl.service", "systemd itself provides"),
    (
        "systemd-machine-id-commit.service",
        "systemd itself provides",
    ),
    ("systemd-exit.service", "systemd itself provides"),
    ("systemd-update-done.service", "systemd itself provides"),
    ("systemd-tmpfiles-clean.service", "systemd itself provides"),
    ("systemd-tmpfiles-clean.timer", "systemd itself provides"),
    ("systemd-tmpfiles-setup.service", "systemd itself provides"),
    (
        "systemd-tmpfiles-setup-dev.service",
        "systemd itself provides",
    ),
    (
        "systemd-tmpfiles-setup-dev-early.service",
        "systemd itself provides",
    ),
];

/// Service names that distributions ship, which an app should not take:
/// an app's Quadlet unit `<app>.service` in /run/systemd/generator hides
/// the distribution's unit of that name, on NixOS the two collide, and on
/// Guix two Shepherd services would provide one name. Curated from the
/// packages and service modules most often run beside (or replaced by)
/// containers; `RESERVED_UNITS` holds the names that are errors instead.
/// Each list is sorted.
const WELL_KNOWN_DEBIAN: &[&str] = &[
    // Debian packages' unit names (and their `Alias=`es).
    "apache2",
    "avahi-daemon",
    "bind9",
    "caddy",
    "chrony",
    "clamav-daemon",
    "clamav-freshclam",
    "containerd",
    "cron",
    "cups",
    "dbus",
    "dnsmasq",
    "docker",
    "dovecot",
    "etcd",
    "exim4",
    "fail2ban",
    "haproxy",
    "influxdb",
    "lighttpd",
    "mariadb",
    "memcached",
    "mosquitto",
    "mysql",
    "named",
    "nftables",
    "nginx",
    "nmbd",
    "ntp",
    "ntpsec",
    "openvpn",
    "postfix",
    "postgresql",
    "prometheus",
    "prometheus-alertmanager",
    "prometheus-node-exporter",
    "rabbitmq-server",
    "redis",
    "redis-sentinel",
    "redis-server",
    "rspamd",
    "rsyslog",
    "slapd",
    "smbd",
    "squid",
    "ssh",
    "sshd",
    "tor",
    "transmission-daemon",
    "unbound",
    "varnish",
    "vsftpd",
    "zookeeper",
];
const WELL_KNOWN_NIXOS: &[&str] = &[
    // NixOS service modules' unit names (`services.<x>`).
    "adguardhome",
    "alertmanager",
    "avahi-daemon",
    "bind",
    "caddy",
    "chronyd",
    "clamav-daemon",
    "clickhouse",
    "containerd",
    "coredns",
    "cron",
    "cups",
    "dnsmasq",
    "docker",
    "dovecot2",
    "elasticsearch",
    "etcd",
    "fail2ban",
    "forgejo",
    "gitea",
    "gitlab",
    "grafana",
    "haproxy",
    "home-assistant",
    "httpd",
    "influxdb",
    "jellyfin",
    "keycloak",
    "loki",
    "matrix-synapse",
    "meilisearch",
    "memcached",
    "minio",
    "mongodb",
    "mosquitto",
    "mysql",
    "nats",
    "netdata",
    "nextcloud-setup",
    "nginx",
    "nix-daemon",
    "ollama",
    "opensearch",
    "plex",
    "postfix",
    "postgresql",
    "prometheus",
    "prometheus-node-exporter",
    "promtail",
    "rabbitmq",
    "redis",
    "rspamd",
    "sshd",
    "syncthing",
    "tailscaled",
    "telegraf",
    "tor",
    "traefik",
    "unbound",
    "uptime-kuma",
    "vaultwarden",
    "zookeeper",
];
const WELL_KNOWN_GUIX: &[&str] = &[
    // Shepherd services of Guix's service types (their `provision`).
    "avahi-daemon",
    "cups",
    "dbus-system",
    "dovecot",
    "guix-daemon",
    "httpd",
    "mcron",
    "memcached",
    "mysql",
    "networking",
    "nginx",
    "nscd",
    "postgres",
    "prometheus-node-exporter",
    "redis",
    "ssh-daemon",
    "syslogd",
    "tor",
    "unbound",
];

/// Which distributions ship a service named `name`, in words
/// (`"Debian and NixOS"`), if any does.
pub fn well_known_unit(name: &str) -> Option<String> {
    let who: Vec<&str> = [
        ("Debian", WELL_KNOWN_DEBIAN),
        ("NixOS", WELL_KNOWN_NIXOS),
        ("Guix", WELL_KNOWN_GUIX),
    ]
    .into_iter()
    .filter(|(_, list)| list.binary_search(&name).is_ok())
    .map(|(d, _)| d)
    .collect();
    match who.as_slice() {
        [] => None,
        [one] => Some((*one).to_string()),
        [init @ .., last] => Some(format!("{} and {last}", init.join(", "))),
    }
}

#[cfg(test)]
mod well_known_tests {
    use super::*;

    #[test]
    fn the_lists_are_sorted_and_none_is_reserved() {
        for list in [WELL_KNOWN_DEBIAN, WELL_KNOWN_NIXOS, WELL_KNOWN_GUIX] {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "{list:?}");
            for n in list {
                let unit = format!("{n}.service");
                assert!(!RESERVED_UNITS.iter().any(|(u, _)| *u == unit), "{n}");
            }
        }
    }

    #[test]
    fn names_the_distributions() {
        assert_eq!(
            well_known_unit("postgresql").as_deref(),
            Some("Debian and NixOS")
        );
        assert_eq!(
            well_known_unit("redis").as_deref(),
            Some("Debian, NixOS and Guix")
        );
        assert_eq!(well_known_unit("postgres").as_deref(), Some("Guix"));
        assert_eq!(well_known_unit("lnd"), None);
    }
}
