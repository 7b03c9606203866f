//! The compose files of one project, read and merged as compose reads
//! them (compose-go's `loader.loadYamlModel`): each file on its own (its
//! `<<` merge keys, then its `extends`), then every later file merged over
//! the earlier ones with the rules `extends` uses (see
//! [`extends::merge_documents`]), honouring the `!reset` and `!override`
//! tags. Relative paths in every file are relative to the project
//! directory, the first file's, as in compose. Without `-f`, compose
//! also reads the override file beside the compose file
//! ([`default_override`]).

use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

use super::{ImportError, extends, read_compose};

/// The override files compose picks up beside the compose file when no
/// `-f` is given, in its order of preference (only the first found is
/// read).
pub const DEFAULT_OVERRIDES: [&str; 4] = [
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

/// The override file compose would read after `main`, if any.
pub fn default_override(main: &Path) -> Option<PathBuf> {
    let dir = main.parent().unwrap_or(Path::new("."));
    DEFAULT_OVERRIDES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file() && p.file_name() != main.file_name())
}

/// A project's files, merged and not yet interpolated.
#[derive(Debug)]
pub struct Loaded {
    pub doc: Value,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    /// The services that were extended, each with its base.
    pub extended: Vec<(String, String)>,
}

/// Reads `files` (absolute or relative to the current directory) as one
/// project whose directory is `project_dir` (the first file's when
/// `None`), as compose-go reads `-f a -f b`.
pub fn load(files: &[PathBuf], project_dir: Option<&Path>) -> Result<Loaded, ImportError> {
    let mut loaded = Loaded {
        doc: Value::Mapping(Mapping::new()),
        files: Vec::new(),
        extended: Vec::new(),
    };
    let mut working_dir = project_dir.map(Path::to_path_buf);
    for path in files {
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
        let prev = std::mem::replace(&mut loaded.doc, Value::Null);
        loaded.doc = extends::merge_documents(prev, doc).map_err(err)?;
        loaded.files.push(path.clone());
    }
    Ok(loaded)
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
}
