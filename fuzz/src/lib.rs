//! Fuzz targets for the inputs windlass reads from people and from disk:
//!
//! * [`manifest`]: a fleet (app manifests and `windlass.toml`) through the
//!   generator's whole pipeline, every target emitted.
//! * [`compose`]: a docker-compose file through `windlass import`, the
//!   imported fleet written, loaded and generated.
//! * [`generation`]: `windlass-generation.json` and
//!   `/etc/windlass/generation.json` as the contract crate reads them.
//! * [`record`]: an operation record as the agent reads it, alone and
//!   through [`Store::scan`].
//!
//! A target must never panic and never take more than 2 s on one input;
//! where a property links two halves (what the pipeline writes, the
//! contract reads back) it asserts it, so a broken property is found like
//! a panic. `tools/fuzz` runs each under libFuzzer for a bounded time;
//! the ordinary test suite replays the committed seeds (`tests/seeds.rs`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use windlass::emit::{self, NixosBackend};
use windlass::import::{self, ImportError, depth};
use windlass::pipeline::{self, PipelineError};
use windlass_agent::record::Record;
use windlass_agent::store::Store;
use windlass_contract::{MANIFEST, Manifest, SystemGeneration, unit_of};

/// A fuzz target: takes any bytes, panics on a finding.
pub type Target = fn(&[u8]);

/// The targets, by the name of their binary.
pub const TARGETS: &[(&str, Target)] = &[
    ("manifest", manifest),
    ("compose", compose),
    ("generation", generation),
    ("record", record),
];

/// At most this many files are taken from one bundle.
const MAX_FILES: usize = 16;

/// Splits a bundle of files: each line `#> NAME` starts the file `NAME`;
/// what precedes the first such line is the file `first`. A name that
/// is not `[A-Za-z0-9._-]+` (optionally under `apps/`) becomes `fileN`.
/// Being TOML and YAML comments, the marker lines leave each file's own
/// syntax alone, so a bundle of one file is just that file.
pub fn split_bundle<'a>(data: &'a [u8], first: &str) -> Vec<(String, &'a [u8])> {
    let mut files = Vec::new();
    let mut name = first.to_string();
    let mut start = 0;
    let mut line = 0;
    while line < data.len() && files.len() < MAX_FILES {
        let end = data[line..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(data.len(), |p| line + p);
        if data[line..end].starts_with(b"#> ") {
            if line > 0 {
                files.push((name, &data[start..line]));
            }
            name =
                file_name(&data[line + 3..end]).unwrap_or_else(|| format!("file{}", files.len()));
            start = (end + 1).min(data.len());
        }
        line = end + 1;
    }
    if files.len() < MAX_FILES {
        files.push((name, &data[start.min(data.len())..]));
    }
    files
}

fn file_name(raw: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(raw).ok()?.trim();
    let base = s.strip_prefix("apps/").unwrap_or(s);
    let ok = !base.is_empty()
        && base.len() <= 64
        && base != "."
        && base != ".."
        && base
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    ok.then(|| s.to_string())
}

/// A fresh, empty directory `name` under this process's scratch
/// directory (in `TMPDIR`; tools/fuzz points it at a tmpfs and removes it).
pub fn scratch(name: &str) -> PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    let root = ROOT
        .get_or_init(|| std::env::temp_dir().join(format!("windlass-fuzz-{}", std::process::id())));
    let dir = root.join(name);
    match fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("cannot clear {}: {e}", dir.display()),
    }
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// Writes a bundle's files; one whose name collides with another's (a
/// file `apps` and a file `apps/web.toml`) is left out.
fn write_files(dir: &Path, files: &[(String, &[u8])]) {
    for (name, bytes) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent()
            && fs::create_dir_all(parent).is_err()
        {
            continue;
        }
        let _ = fs::write(&path, bytes);
    }
}

fn all_targets(data: &[u8]) -> pipeline::Options {
    pipeline::Options {
        podman_version: None,
        templates: None,
        targets: emit::Target::ALL.iter().copied().collect(),
        // Both backends, chosen by the input so that each input always
        // takes the same one.
        nixos_backend: if data.len().is_multiple_of(2) {
            NixosBackend::OciContainers
        } else {
            NixosBackend::Quadlet
        },
    }
}

/// Runs the pipeline on the fleet in `dir` as `windlass generate` would,
/// rendering every diagnostic; a generated tree's manifest must read
/// back through the contract unchanged.
fn generate(dir: &Path, data: &[u8]) {
    match pipeline::build(dir, &all_targets(data)) {
        Ok(built) => {
            for w in &built.warnings {
                let _ = w.render();
            }
            let file = built
                .files
                .iter()
                .find(|f| f.path == MANIFEST)
                .expect("the pipeline adds the generation manifest");
            let read = Manifest::from_slice(file.content.as_bytes())
                .unwrap_or_else(|e| panic!("the generated manifest does not read back: {e}"));
            assert_eq!(
                read.to_json(),
                file.content,
                "the generated manifest changes when read and written back"
            );
        }
        Err(PipelineError::Invalid(diags)) => {
            assert!(
                diags.iter().any(|d| d.is_error()),
                "an invalid fleet without an error"
            );
            for d in &diags {
                let _ = d.render();
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// A fleet directory from a bundle (see [`split_bundle`]; the first file
/// is `app.toml`, name others `windlass.toml`, `NAME.toml` or
/// `apps/NAME.toml`), validated and generated for every target.
pub fn manifest(data: &[u8]) {
    let dir = scratch("fleet");
    write_files(&dir, &split_bundle(data, "app.toml"));
    generate(&dir, data);
}

/// Levels of a parsed YAML document, as the deserializer counts them.
fn yaml_depth(v: &serde_norway::Value) -> usize {
    use serde_norway::Value;
    match v {
        Value::Sequence(s) => 1 + s.iter().map(yaml_depth).max().unwrap_or(0),
        Value::Mapping(m) => {
            1 + m
                .iter()
                .map(|(k, v)| yaml_depth(k).max(yaml_depth(v)))
                .max()
                .unwrap_or(0)
        }
        Value::Tagged(t) => yaml_depth(&t.value),
        _ => 0,
    }
}

/// A compose project from a bundle (the first file is `compose.yaml`;
/// others, such as `.env` or a secret's file, are put beside it) through
/// `windlass import` (interpolating when the input has a `$`), the
/// report rendered, the fleet written, loaded and generated.
pub fn compose(data: &[u8]) {
    let dir = scratch("compose");
    let project = dir.join("proj");
    let files = split_bundle(data, "compose.yaml");
    let compose_file = project.join(&files[0].0);
    write_files(&project, &files);

    // The depth scan never counts more levels than the parser finds.
    if let Ok(text) = std::str::from_utf8(files[0].1)
        && depth::too_deep(text, depth::MAX_DEPTH).is_none()
        && let Ok(doc) = serde_norway::from_str::<serde_norway::Value>(text)
    {
        let levels = yaml_depth(&doc);
        if let Some((line, column)) = depth::too_deep(text, levels) {
            panic!(
                "the depth scan counts more than the document's {levels} levels at line {line} column {column}"
            );
        }
    }

    let opts = import::Options {
        compose_files: vec![compose_file],
        default_override: false,
        project: None,
        prefix: None,
        env_files: Vec::new(),
        process_env: data.contains(&b'$'),
        environment: BTreeMap::from(
            [
                ("HOME", "/home/fuzz"),
                ("USER", "fuzz"),
                ("TAG", "1.2"),
                ("PASSWORD", "hunter2"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        ),
    };
    let imported = match import::import(&opts) {
        Ok(i) => i,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let _ = imported.report.render();
    let _ = imported.report.to_json();
    let fleet = dir.join("fleet");
    match import::write(&fleet, &imported, false) {
        Ok(_) => generate(&fleet, data),
        Err(ImportError::Invalid(diags)) => {
            for d in &diags {
                let _ = d.render();
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// The bytes as `windlass-generation.json` and as
/// `/etc/windlass/generation.json`; a document that reads must write
/// back to itself.
pub fn generation(data: &[u8]) {
    match Manifest::from_slice(data) {
        Ok(m) => {
            let text = m.to_json();
            let back = Manifest::from_slice(text.as_bytes())
                .unwrap_or_else(|e| panic!("a manifest's own JSON does not read back: {e}"));
            assert_eq!(back, m, "a manifest changes when written and read back");
            let units: Vec<String> = m.units().into_keys().collect();
            let _ = m.deadline_for(&units);
            for a in &m.apps {
                let _ = m.app(&a.name);
            }
            for f in &m.files {
                let _ = unit_of(&f.path);
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    match SystemGeneration::from_slice(data) {
        Ok(g) => {
            let text = g.to_json();
            let back = SystemGeneration::from_slice(text.as_bytes()).unwrap_or_else(|e| {
                panic!("a system generation's own JSON does not read back: {e}")
            });
            assert_eq!(
                back, g,
                "a system generation changes when written and read back"
            );
            let _ = Manifest::from(g).to_json();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// An operation id as the store names files: `[A-Za-z0-9_]{1,64}`.
fn id_like(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// The bytes as an operation record: parsed as the agent parses one, and
/// as `<state>/operations/<id>.json` through [`Store::scan`], which must
/// agree. A record that reads must save (as `Store::save_any` does), and
/// what it saves must read back and save the same again.
pub fn record(data: &[u8]) {
    let parsed = serde_json::from_slice::<Record>(data);
    let id = match &parsed {
        Ok(r) => {
            let saved = serde_json::to_vec_pretty(r).expect("records serialize");
            let back: Record = serde_json::from_slice(&saved)
                .unwrap_or_else(|e| panic!("a saved record does not load: {e}"));
            let again = serde_json::to_vec_pretty(&back).expect("records serialize");
            assert_eq!(
                String::from_utf8_lossy(&again),
                String::from_utf8_lossy(&saved),
                "a record changes when saved, loaded and saved again"
            );
            let v = serde_json::to_value(r).expect("records serialize");
            v["id"]
                .as_str()
                .expect("a record has a string id")
                .to_string()
        }
        Err(_) => serde_json::from_slice::<serde_json::Value>(data)
            .ok()
            .and_then(|v| v.get("id")?.as_str().map(str::to_string))
            .filter(|s| id_like(s))
            .unwrap_or_else(|| "000000000001x000".to_string()),
    };
    let state = scratch("state");
    let ops = state.join("operations");
    fs::create_dir(&ops).expect("scratch directory");
    fs::write(ops.join(format!("{id}.json")), data).expect("scratch file");
    let scan = Store::new(&state).scan();
    match parsed {
        Ok(r) => {
            assert_eq!(scan.records, vec![r], "the store reads a record otherwise");
            assert!(scan.damaged.is_empty(), "{:?}", scan.damaged);
        }
        Err(_) => {
            assert!(
                scan.records.is_empty(),
                "the store reads what does not parse"
            );
            assert_eq!(scan.damaged.len(), 1, "{:?}", scan.damaged);
        }
    }
}

/// Every file under `path` (itself if a file), sorted.
pub fn files_under(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = fs::read_dir(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        entries.sort();
        for e in entries {
            out.extend(files_under(&e));
        }
    } else if path.is_file() {
        out.push(path.to_path_buf());
    }
    out
}

/// Runs `target` on every file under `paths`; returns the slowest.
pub fn replay(target: Target, paths: &[PathBuf]) -> (usize, Option<(PathBuf, f64)>) {
    let mut count = 0;
    let mut slowest: Option<(PathBuf, f64)> = None;
    for path in paths.iter().flat_map(|p| files_under(p)) {
        let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let started = Instant::now();
        target(&data);
        let secs = started.elapsed().as_secs_f64();
        count += 1;
        if slowest.as_ref().is_none_or(|(_, s)| secs > *s) {
            slowest = Some((path, secs));
        }
    }
    (count, slowest)
}

/// `main` of a target built without libFuzzer: replays the files (and
/// directories) named on the command line; a panic shows its backtrace
/// (with `RUST_BACKTRACE=1`).
pub fn replay_main(name: &str, target: Target) -> std::process::ExitCode {
    let paths: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if paths.is_empty() {
        eprintln!("usage: {name} FILE_OR_DIR...  (replays each input through the `{name}` target)");
        return std::process::ExitCode::from(2);
    }
    let (count, slowest) = replay(target, &paths);
    match slowest {
        Some((p, secs)) => eprintln!(
            "{name}: {count} inputs, no panic; slowest {:.3} s: {}",
            secs,
            p.display()
        ),
        None => eprintln!("{name}: no input found"),
    }
    std::process::ExitCode::SUCCESS
}
