//! The compose files of one project, read and merged as compose reads
//! them (compose-go's `loader.loadYamlModel`): each file on its own (its
//! `<<` merge keys, then its `extends`), then every later file merged over
//! the earlier ones with the rules `extends` uses (see
//! [`extends::merge_documents`]), honouring the `!reset` and `!override`
//! tags. Relative paths in every file are relative to the project
//! directory, the first file's, as in compose.

use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

use super::{ImportError, extends, read_compose};

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
