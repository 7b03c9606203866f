//! The generator's one path: load and validate the fleet, emit every
//! requested target, add the generation manifest. Returns everything in
//! memory; writing is `output`'s job, so nothing is written on any error.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::emit::{self, EmitContext, EmitError, NixosBackend, Target};
use crate::input_file::InputFile;
use crate::manifest::diag::Diagnostic;
use crate::model::{self, Fleet, values::parse_podman_version};
use crate::output::OutputError;
use crate::output_file::OutputFile;
use crate::templates::{TemplateError, Templates};

pub struct Options {
    pub podman_version: Option<String>,
    pub templates: Option<PathBuf>,
    pub targets: BTreeSet<Target>,
    pub nixos_backend: NixosBackend,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("invalid fleet")]
    Invalid(Vec<Diagnostic>),
    #[error(transparent)]
    Emit(#[from] EmitError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--podman-version: {0}")]
    Usage(String),
}

pub struct Built {
    pub fleet: Fleet,
    /// Every file, sorted by path; each hashed but the generation
    /// manifest, `files[manifest_at]`, whose hash is left to the caller
    /// that needs it ([`Built::manifest_sha256`]).
    pub files: Vec<OutputFile>,
    pub manifest_at: usize,
    pub warnings: Vec<Diagnostic>,
    pub notes: Vec<String>,
    /// The fleet's files, in the order read, as they were when read.
    pub inputs_read: Vec<InputFile>,
    /// The template overrides read, as they were when read.
    pub templates_read: Vec<InputFile>,
}

impl Built {
    /// The generation manifest's SHA-256, for `files[manifest_at].sha256`.
    pub fn manifest_sha256(&self) -> String {
        crate::output_file::sha256_hex(self.files[self.manifest_at].content.as_bytes())
    }

    /// The warnings and notes as printed, one block of text.
    pub fn warnings_text(&self) -> String {
        let mut out = String::new();
        for w in &self.warnings {
            out.push_str(&w.render());
        }
        for n in &self.notes {
            out.push_str(&format!("warning: {n}\n"));
        }
        out
    }

    pub fn print_warnings(&self) {
        eprint!("{}", self.warnings_text());
    }
}

pub fn build(apps_dir: &Path, opts: &Options) -> Result<Built, PipelineError> {
    if !apps_dir.is_dir() {
        return Err(PipelineError::Io {
            path: apps_dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        });
    }
    // The templates are loaded beside the fleet's reading; an invalid
    // fleet is still reported before a template's error.
    let (loaded, templates) = crate::par::join(
        || model::load_fleet(apps_dir),
        || Templates::load(opts.templates.as_deref()),
    );
    let loaded = loaded.map_err(|source| PipelineError::Io {
        path: apps_dir.to_path_buf(),
        source,
    })?;
    let inputs_read = loaded.read;
    crate::phase!("fleet built");
    let Some(mut fleet) = loaded.fleet else {
        return Err(PipelineError::Invalid(loaded.diagnostics));
    };
    if let Some(v) = &opts.podman_version {
        fleet.podman = parse_podman_version(v)
            .map_err(|e| PipelineError::Usage(format!("{e}, found {v:?}")))?;
    }
    let templates = templates?;
    let templates_read = templates.read.clone();
    crate::phase!("templates loaded");
    let mut ctx = EmitContext {
        podman: fleet.podman,
        templates: &templates,
        nixos_backend: opts.nixos_backend,
        warnings: Vec::new(),
    };
    let mut files = emit::emit(&fleet, &opts.targets, &mut ctx)?;
    crate::phase!("emitters done");
    let targets: Vec<Target> = opts.targets.iter().copied().collect();
    // Each file was hashed as it was made (`OutputFile::new`). The files'
    // entries in the generation manifest and the apps' contracts are made
    // side by side.
    let (entries, contracts) = crate::par::join(
        || crate::generation::entries(&files),
        || crate::generation::contracts(&fleet),
    );
    crate::phase!("manifest entries and contracts");
    let manifest = crate::generation::manifest(&fleet, &contracts, &entries, &targets);
    crate::phase!("generation manifest");
    // `emit` returns the files sorted by path: the manifest goes in its
    // place among them.
    debug_assert!(files.is_sorted_by(|a, b| a.path < b.path));
    let at = files.partition_point(|f| f.path < manifest.path);
    files.insert(at, manifest);
    crate::phase!("files sorted");
    // Targets that share an emitter (nixos embeds quadlet) repeat its notes.
    let mut notes = Vec::new();
    for w in ctx.warnings {
        if !notes.contains(&w) {
            notes.push(w);
        }
    }
    Ok(Built {
        fleet,
        files,
        manifest_at: at,
        warnings: loaded.diagnostics,
        notes,
        inputs_read,
        templates_read,
    })
}
