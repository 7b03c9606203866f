//! The compose files of one project, read and merged as compose reads
//! them (compose-go's `loader.loadYamlModel`): each file on its own (its
//! `<<` merge keys, then its `extends`), then every later file merged over
//! the earlier ones with the rules `extends` uses (see
//! [`extends::merge_documents`]), honouring the `!reset` and `!override`
//! tags. Relative paths in every file are relative to the project
//! directory, the first file's, as in compose.
//!
//! `include:` entries are collected here, their paths resolved as compose
//! resolves them; each included project is loaded and interpolated on its
//! own by the caller (with its own variables), after the including project
//! is interpolated.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

use super::{ImportError, extends, key_str, read_compose};

/// The override files compose picks up beside the compose file when no
/// `-f` is given, in its order of preference (only the first found is
/// read).
pub const DEFAULT_OVERRIDES: [&str; 4] = [
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

/// The resources `include` brings in and compose checks for conflicts.
pub const RESOURCES: [&str; 5] = ["services", "volumes", "networks", "secrets", "configs"];

/// The override file compose would read after `main`, if any.
pub fn default_override(main: &Path) -> Option<PathBuf> {
    let dir = main.parent().unwrap_or(Path::new("."));
    DEFAULT_OVERRIDES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file() && p.file_name() != main.file_name())
}

/// One `include:` entry, its paths made absolute as compose makes them.
#[derive(Debug, Clone)]
pub struct Include {
    /// `include[i]` in the file that declares it, for messages.
    pub place: String,
    /// The file that declares it.
    pub declared_in: PathBuf,
    /// Its compose files: the first one, then its overrides.
    pub files: Vec<PathBuf>,
    /// Where its relative paths point: `project_directory`, else the
    /// first file's directory.
    pub project_dir: PathBuf,
    /// `env_file` as given (made absolute); empty: `.env` in
    /// `project_dir` when it exists.
    pub env_files: Vec<PathBuf>,
}

/// A project's files, merged and not yet interpolated.
#[derive(Debug)]
pub struct Loaded {
    pub doc: Value,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    /// The services that were extended, each with its base.
    pub extended: Vec<(String, String)>,
    pub includes: Vec<Include>,
    /// (resource kind, name, index of the file) for each resource a file
    /// defines itself, to tell an include conflict in the declaring file
    /// from one across files.
    pub defined: BTreeSet<(String, String, usize)>,
}

fn absolute(p: &str, dir: &Path) -> PathBuf {
    let p = Path::new(p);
    super::service::normalize(&if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    })
}

/// Reads `files` (absolute or relative to the current directory) as one
/// project whose directory is `project_dir` (the first file's when
/// `None`), as compose-go reads `-f a -f b`.
pub fn load(files: &[PathBuf], project_dir: Option<&Path>) -> Result<Loaded, ImportError> {
    let mut loaded = Loaded {
        doc: Value::Mapping(Mapping::new()),
        files: Vec::new(),
        extended: Vec::new(),
        includes: Vec::new(),
        defined: BTreeSet::new(),
    };
    let mut working_dir = project_dir.map(Path::to_path_buf);
    for (i, path) in files.iter().enumerate() {
        let (mut doc, dir) = read_compose(path)?;
        let path =
            &super::service::normalize(&std::path::absolute(path).unwrap_or_else(|_| path.clone()));
        let working_dir = working_dir.get_or_insert(dir).clone();
        let err = |message: String| ImportError::Compose {
            path: path.clone(),
            message,
        };
        match &doc {
            Value::Mapping(_) => {}
            // An empty file, as compose reads it: nothing to merge.
            Value::Null => doc = Value::Mapping(Mapping::new()),
            _ => return Err(err("expected a map at the top level".into())),
        }
        let extended =
            extends::resolve(&mut doc, &working_dir).map_err(|e| err(format!("extends: {e}")))?;
        loaded.extended.extend(extended);
        if let Some(include) = doc.as_mapping_mut().and_then(|m| m.remove("include")) {
            let entries = includes(&include, path, &working_dir).map_err(err)?;
            loaded.includes.extend(entries);
        }
        for kind in RESOURCES {
            if let Some(Value::Mapping(m)) = doc.get(kind) {
                for name in m.keys() {
                    loaded.defined.insert((kind.to_string(), key_str(name), i));
                }
            }
        }
        let prev = std::mem::replace(&mut loaded.doc, Value::Null);
        loaded.doc = extends::merge_documents(prev, doc).map_err(err)?;
        loaded.files.push(path.clone());
    }
    Ok(loaded)
}

/// The entries of a file's `include:` (short form: a path; long form:
/// `path` (a string or a list: the file, then its overrides),
/// `project_directory`, `env_file`), resolved as compose-go's
/// `ApplyInclude` resolves them: every relative path against the
/// including project's directory (`working_dir`).
fn includes(v: &Value, declared_in: &Path, working_dir: &Path) -> Result<Vec<Include>, String> {
    let Value::Sequence(items) = v else {
        return Err("`include` must be a list".into());
    };
    let strings = |v: &Value, what: &str| -> Result<Vec<String>, String> {
        match v {
            Value::String(s) => Ok(vec![s.clone()]),
            Value::Sequence(s) => s
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("each `{what}` must be a string"))
                })
                .collect(),
            _ => Err(format!("`{what}` must be a string or a list of strings")),
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let place = format!("include[{i}]");
        let (paths, project_dir, env_files) = match item {
            Value::String(s) => (vec![s.clone()], None, Vec::new()),
            Value::Mapping(m) => {
                for k in m.keys() {
                    let k = key_str(k);
                    if !["path", "project_directory", "env_file"].contains(&k.as_str()) {
                        return Err(format!("{place}: unknown key `{k}`"));
                    }
                }
                let paths = strings(
                    m.get("path")
                        .ok_or_else(|| format!("{place}: `path` is required"))?,
                    "path",
                )
                .map_err(|e| format!("{place}: {e}"))?;
                let dir = match m.get("project_directory") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(d)) => Some(d.clone()),
                    Some(_) => {
                        return Err(format!("{place}: `project_directory` must be a string"));
                    }
                };
                let env = match m.get("env_file") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(v) => strings(v, "env_file").map_err(|e| format!("{place}: {e}"))?,
                };
                (paths, dir, env)
            }
            _ => return Err(format!("{place}: expected a path or a map")),
        };
        if paths.is_empty() {
            return Err(format!("{place}: `path` is empty"));
        }
        if paths.iter().chain(&env_files).any(|p| p.contains('$')) {
            // compose interpolates them; not done here yet.
            return Err(format!(
                "{place}: a path holds `$`: variables in `include` are not supported by windlass import yet; write the path out"
            ));
        }
        let files: Vec<PathBuf> = paths.iter().map(|p| absolute(p, working_dir)).collect();
        let project_dir = match project_dir {
            Some(d) => absolute(&d, working_dir),
            None => files[0]
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("/")),
        };
        let env_files = env_files.iter().map(|f| absolute(f, working_dir)).collect();
        out.push(Include {
            place,
            declared_in: declared_in.to_path_buf(),
            files,
            project_dir,
            env_files,
        });
    }
    Ok(out)
}

/// Makes the relative paths of an included project absolute against its
/// project directory, as compose does (`ResolvePaths`): each service's
/// `env_file`, `build` context and bind mount sources, and the `file` of
/// top-level secrets and configs.
pub fn absolute_paths(doc: &mut Value, dir: &Path) {
    if let Some(Value::Mapping(services)) = doc.get_mut("services") {
        for (_, svc) in services.iter_mut() {
            if let Value::Mapping(m) = svc {
                extends::absolute_paths(m, dir);
            }
        }
    }
    for kind in ["secrets", "configs"] {
        if let Some(Value::Mapping(defs)) = doc.get_mut(kind) {
            for (_, def) in defs.iter_mut() {
                if let Some(Value::String(f)) = def.get_mut("file") {
                    *f = absolute(f, dir).to_string_lossy().into_owned();
                }
            }
        }
    }
}

/// compose-go's `importResources`: the resources of an included project
/// (`from`) join `into`; a name `into` already has is an error unless
/// both definitions are equal. Returns the conflicting (kind, name)s,
/// which are left as `into` has them.
pub fn import_resources(from: &Value, into: &mut Value) -> Vec<(String, String)> {
    let mut conflicts = Vec::new();
    let Value::Mapping(target) = into else {
        return conflicts;
    };
    for kind in RESOURCES {
        let Some(Value::Mapping(src)) = from.get(kind) else {
            continue;
        };
        let to = target
            .entry(Value::String(kind.to_string()))
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        if to.is_null() {
            *to = Value::Mapping(Mapping::new());
        }
        let Value::Mapping(to) = to else { continue };
        for (name, def) in src {
            match to.get(name) {
                Some(existing) if existing == def => {}
                Some(_) => conflicts.push((kind.to_string(), key_str(name))),
                None => {
                    to.insert(name.clone(), def.clone());
                }
            }
        }
    }
    conflicts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_override_file_is_the_first_of_composes_names_beside_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let main = tmp.path().join("compose.yml");
        std::fs::write(&main, "services: {}\n").unwrap();
        assert_eq!(default_override(&main), None);
        std::fs::write(tmp.path().join("docker-compose.override.yml"), "").unwrap();
        assert_eq!(
            default_override(&main),
            Some(tmp.path().join("docker-compose.override.yml"))
        );
        std::fs::write(tmp.path().join("compose.override.yaml"), "").unwrap();
        assert_eq!(
            default_override(&main),
            Some(tmp.path().join("compose.override.yaml"))
        );
    }

    #[test]
    fn include_paths_resolve_against_the_including_project_directory() {
        let v: Value = serde_norway::from_str(
            "- a/compose.yml\n- path: [../b/c.yml, o.yml]\n  project_directory: pd\n  env_file: e.env\n",
        )
        .unwrap();
        let inc = includes(&v, Path::new("/p/compose.yml"), Path::new("/p")).unwrap();
        assert_eq!(inc[0].files, [PathBuf::from("/p/a/compose.yml")]);
        assert_eq!(inc[0].project_dir, PathBuf::from("/p/a"));
        assert!(inc[0].env_files.is_empty());
        assert_eq!(
            inc[1].files,
            [PathBuf::from("/b/c.yml"), PathBuf::from("/p/o.yml")]
        );
        assert_eq!(inc[1].project_dir, PathBuf::from("/p/pd"));
        assert_eq!(inc[1].env_files, [PathBuf::from("/p/e.env")]);
        let bad: Value = serde_norway::from_str("- path: x\n  nope: 1\n").unwrap();
        assert!(includes(&bad, Path::new("/p/c.yml"), Path::new("/p")).is_err());
    }
}
