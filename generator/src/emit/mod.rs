//! Emitters, one module per target. Each is pure: `&Fleet` in, a list of
//! files out. They never touch the file system (see `output`) and never
//! write a value without passing it through `escape`.

pub mod guix;
pub mod keys;
pub mod nixos;
pub mod podman;
pub mod quadlet;
pub mod systemd;
pub mod unitfile;

use std::collections::BTreeSet;

use crate::model::{Fleet, PodmanVersion};
use crate::output_file::OutputFile;
use crate::templates::{TemplateError, Templates};

/// How the NixOS module runs containers; its name is part of the contract
/// the module installs.
pub use windlass_contract::NixosBackend;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Quadlet,
    Systemd,
    Nixos,
    Guix,
}

impl Target {
    pub const ALL: &[Target] = &[
        Target::Quadlet,
        Target::Systemd,
        Target::Nixos,
        Target::Guix,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Quadlet => "quadlet",
            Target::Systemd => "systemd",
            Target::Nixos => "nixos",
            Target::Guix => "guix",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("app `{app}`: {message}")]
    Unsupported { app: String, message: String },
}

/// What an emitter needs besides the fleet.
pub struct EmitContext<'a> {
    pub podman: PodmanVersion,
    pub templates: &'a Templates,
    pub nixos_backend: NixosBackend,
    /// Notes for the operator (e.g. a feature degraded for an old Podman).
    pub warnings: Vec<String>,
}

impl<'a> EmitContext<'a> {
    /// A context with the same settings and no notes yet: for work done
    /// beside this context's (its notes are added back in order).
    pub(crate) fn fresh(&self) -> EmitContext<'a> {
        EmitContext {
            podman: self.podman,
            templates: self.templates,
            nixos_backend: self.nixos_backend,
            warnings: Vec::new(),
        }
    }
}

/// `f` for every app of `fleet`, spread over the cores (see [`crate::par`]):
/// the results and each app's notes come back in the apps' order, and the
/// first error in that order is the one returned, as a sequential loop
/// would.
pub(crate) fn per_app<R, F>(
    fleet: &Fleet,
    ctx: &mut EmitContext<'_>,
    f: F,
) -> Result<Vec<R>, EmitError>
where
    R: Send,
    F: Fn(&crate::model::App, &mut EmitContext<'_>) -> Result<R, EmitError> + Sync,
{
    let shared = ctx.fresh();
    let done = crate::par::map(&fleet.apps, |app| {
        let mut c = shared.fresh();
        let r = f(app, &mut c);
        (r, c.warnings)
    });
    let mut out = Vec::with_capacity(done.len());
    for (r, warnings) in done {
        ctx.warnings.extend(warnings);
        out.push(r?);
    }
    Ok(out)
}

/// Runs the emitters for `targets`: the Quadlet emitter (whose text the
/// NixOS quadlet backend embeds, so it runs once for both), the systemd and
/// the Guix emitters, one after another, each over all cores for its
/// per-app work. Files are sorted, notes kept in target order.
pub fn emit(
    fleet: &Fleet,
    targets: &BTreeSet<Target>,
    ctx: &mut EmitContext<'_>,
) -> Result<Vec<OutputFile>, EmitError> {
    // Two sides run at once on the same worker threads (`par::join`): the
    // Quadlet emitter and the NixOS one that embeds its text, and the
    // systemd and Guix emitters. Each spreads its apps over the threads,
    // so a serial step of one (the NixOS fleet module, the Guix generation
    // service) overlaps the other's per-app work. Notes keep target
    // order, and the first error in target order is the one reported.
    let want = |t| targets.contains(&t);
    let mut other = ctx.fresh();
    let (first, second) = crate::par::join(
        || -> Result<Vec<OutputFile>, EmitError> {
            let mut files = Vec::new();
            if want(Target::Quadlet) || want(Target::Nixos) {
                let quadlet = quadlet::emit(fleet, ctx)?;
                crate::phase!("quadlet done");
                if want(Target::Nixos) {
                    files.extend(nixos::emit(fleet, &quadlet, ctx)?);
                    crate::phase!("nixos done");
                }
                if want(Target::Quadlet) {
                    files.extend(quadlet);
                }
            }
            Ok(files)
        },
        || -> Result<Vec<OutputFile>, EmitError> {
            let mut files = Vec::new();
            if want(Target::Systemd) {
                files.extend(systemd::emit(fleet, &mut other)?);
                crate::phase!("systemd done");
            }
            if want(Target::Guix) {
                files.extend(guix::emit(fleet, &mut other)?);
                crate::phase!("guix done");
            }
            Ok(files)
        },
    );
    let mut files = first?;
    files.extend(second?);
    ctx.warnings.extend(other.warnings);
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// Formats microseconds as a Go duration for Podman (`30s`, `1500ms`).
pub fn go_duration(usec: u64) -> String {
    if usec.is_multiple_of(1_000_000) {
        format!("{}s", usec / 1_000_000)
    } else if usec.is_multiple_of(1000) {
        format!("{}ms", usec / 1000)
    } else {
        format!("{usec}us")
    }
}
