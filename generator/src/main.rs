//! `windlass`: wires the command line to the library. Exit codes: 0 success,
//! 1 invalid input (or `--check` found a difference), 2 usage or I/O error,
//! 3 (`import`) some services were not imported (the others were written).

use std::collections::BTreeSet;
use std::process::ExitCode;

use clap::Parser;
use windlass::cli::{Cli, Command, NixosBackendArg, TargetArg};
use windlass::emit::{NixosBackend, Target};
use windlass::pipeline::{self, Options, PipelineError};
use windlass::record;

/// A run is a burst of small allocations on every core, freed by other
/// threads than made them (parse trees, unit texts): mimalloc's per-thread
/// pages make the 1,000-app run 6 % faster than glibc's arenas and grow
/// the heap without glibc's thousand `mprotect` calls (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (`mimalloc.h`, v2: the 16th option;
/// `purge_delay_is_option_15` checks it against its documented default).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Memory freed is never given back to the system during a run (-1):
/// it is reused by the run's next steps, and all of it goes back when
/// the process ends. At once (0) kept the peak RSS lowest but faulted the
/// same pages in again (10,500 page faults for 1,000 apps, 7 % of the
/// wall time); 2 ms (2026-12-05 to 12-06) was as fast as 10 for 1,000
/// apps, but for 10,000 apps, whose run lasts a second, it purged and
/// faulted in again tens of MB: 1,082 against 1,026 ms (CPU 1,972
/// against 1,887 ms; 6 alternating runs, all targets, tmpfs), for a peak
/// RSS of 200 MiB against 186. For 1,000 apps the peak RSS is 30.3 MiB
/// against 29.4 (the goal is 32) and the time the same or less (117 against
/// 126 ms, 15 runs). BENCHMARKS.md.
const PURGE_DELAY_MS: std::ffi::c_long = -1;

fn allocator_settings() {
    // SAFETY: mi_option_set takes any option and value; it is called
    // before any other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
}

fn main() -> ExitCode {
    allocator_settings();
    windlass::phase!("start");
    let cli = Cli::parse();
    match cli.command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut cmd, "windlass", &mut text);
            print_bytes(&text)
        }
        Command::Man { dir } => {
            let pages = match windlass::cli::man_pages() {
                Ok(p) => p,
                Err(e) => {
                    windlass::say!("windlass: {e}");
                    return ExitCode::from(2);
                }
            };
            let Some(dir) = dir else {
                return print_bytes(&pages[0].1);
            };
            for (name, text) in &pages {
                let path = dir.join(name);
                if let Err(e) = std::fs::write(&path, text) {
                    windlass::say!("windlass: {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
            windlass::say!("wrote {} man pages to {}", pages.len(), dir.display());
            ExitCode::SUCCESS
        }
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&windlass::manifest::schema::json_schema())
                    .expect("schema serializes")
            );
            ExitCode::SUCCESS
        }
        Command::Import {
            from: Some(from), ..
        } => import_from(from),
        Command::Import {
            compose_file,
            file,
            output,
            project,
            prefix,
            env_file,
            process_env,
            allow_partial,
            report,
            strict,
            force,
            from: None,
        } => {
            let Some(output) = output else {
                unreachable!("clap requires --output without a subcommand")
            };
            // COMPOSE_FILE alone is read as compose reads it when no -f is
            // given: with the override file beside it.
            let default_override = file.is_empty();
            let compose_files = match compose_file {
                Some(f) => vec![f],
                None => file,
            };
            let opts = windlass::import::Options {
                compose_files,
                default_override,
                project,
                prefix,
                env_files: env_file,
                process_env,
                environment: std::env::vars().collect(),
            };
            let how = ImportHow {
                report_file: report.as_deref(),
                strict,
                force,
                allow_partial,
            };
            import(&opts, &output, &how)
        }
        Command::Validate {
            apps_dir,
            target,
            podman_version,
        } => {
            let opts = Options {
                podman_version,
                templates: None,
                targets: targets(target),
                nixos_backend: NixosBackend::default(),
            };
            match pipeline::build(&apps_dir, &opts) {
                Ok(built) => {
                    built.print_warnings();
                    windlass::say!(
                        "ok: {} apps valid in {}",
                        built.fleet.apps.len(),
                        apps_dir.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => report(e),
            }
        }
        Command::Generate {
            apps_dir,
            output,
            target,
            podman_version,
            nixos_backend,
            templates,
            check,
        } => {
            let opts = Options {
                podman_version,
                templates,
                targets: targets(target),
                nixos_backend: match nixos_backend {
                    NixosBackendArg::OciContainers => NixosBackend::OciContainers,
                    NixosBackendArg::Quadlet => NixosBackend::Quadlet,
                },
            };
            // Nothing to do when the record beside OUT shows the same
            // generator, options, inputs and tree: render nothing.
            if let Some(noop) = record::lookup(&output, &apps_dir, &opts, !check) {
                eprint!("{}", noop.warnings);
                if check {
                    windlass::say!(
                        "ok: {} is up to date (as recorded; nothing rendered)",
                        output.display()
                    );
                } else {
                    windlass::say!(
                        "unchanged: {} ({} files, as recorded; nothing rendered)",
                        output.display(),
                        noop.files
                    );
                }
                return ExitCode::SUCCESS;
            }
            let since = record::Since::now();
            // The run goes on one of the worker threads: each of its
            // parallel steps then starts inside the pool instead of being
            // handed to it while this thread sleeps until it is done, and
            // its serial steps allocate from a worker's heap, where the
            // parallel steps freed memory (1,000 apps: 58.2 -> 55.8 ms,
            // 3 ms less CPU, RSS 0.7 MiB less).
            windlass::par::on_workers(|| generate(&apps_dir, &output, &opts, check, since))
        }
    }
}

/// `windlass generate` once the no-op record did not match: render, then
/// compare (`--check`) or write.
fn generate(
    apps_dir: &std::path::Path,
    output: &std::path::Path,
    opts: &Options,
    check: bool,
    since: record::Since,
) -> ExitCode {
    windlass::phase!("no-op record looked up");
    let mut built = match pipeline::build(apps_dir, opts) {
        Ok(b) => b,
        Err(e) => return report(e),
    };
    built.print_warnings();
    if check {
        match windlass::output::diff(output, &built.files) {
            Ok(d) if d.is_empty() => {
                windlass::say!("ok: {} is up to date", output.display());
                ExitCode::SUCCESS
            }
            Ok(d) => {
                for p in &d.added {
                    windlass::say!("would add: {p}");
                }
                for p in &d.changed {
                    windlass::say!("would change: {p}");
                }
                for p in &d.removed {
                    windlass::say!("would remove: {p}");
                }
                windlass::say!(
                    "error: {} is out of date; run `windlass generate` without --check",
                    output.display()
                );
                ExitCode::from(1)
            }
            Err(e) => report(PipelineError::Output(e)),
        }
    } else {
        record::forget(output);
        // The generation manifest is hashed (for the record) while the
        // tree is written: one large file, hashed on one core.
        let (written, manifest_sha256) = windlass::par::join(
            || windlass::output::write_stat(output, &built.files),
            || built.manifest_sha256(),
        );
        let at = built.manifest_at;
        built.files[at].sha256 = manifest_sha256;
        windlass::phase!("tree written");
        // The texts written are kept until the process ends, like the
        // rest of `built`: freeing them before the record is made kept
        // the peak RSS 1 MiB lower for 1,000 apps (28.5 against 29.5
        // MiB) but cost the allocator a purge of most of the heap, which
        // the record then faulted in again: 10,000 apps, 1,126 against
        // 1,045 ms (CPU 2,080 against 1,896 ms; 10 alternating runs).
        let written = written.map(|(d, stats)| {
            record::save(output, apps_dir, opts, &built, since, &stats);
            windlass::phase!("record saved");
            d
        });
        let files = built.files.len();
        // The process ends here: freeing the fleet and every file's path
        // one by one would only delay the exit.
        std::mem::forget(built);
        match written {
            Ok(d) if d.is_empty() => {
                windlass::say!("unchanged: {} ({} files)", output.display(), files);
                ExitCode::SUCCESS
            }
            Ok(d) => {
                windlass::say!(
                    "wrote {}: {} files ({} added, {} changed, {} removed)",
                    output.display(),
                    files,
                    d.added.len(),
                    d.changed.len(),
                    d.removed.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => report(PipelineError::Output(e)),
        }
    }
}

fn import_from(from: windlass::cli::ImportFrom) -> ExitCode {
    use windlass::import::{adopt, podman, quadlet};
    match from {
        windlass::cli::ImportFrom::Quadlet {
            dir,
            output,
            report,
            strict,
            force,
            allow_partial,
        } => adopt::run(
            quadlet::import(&dir),
            &output,
            quadlet::HEADER_APP,
            report.as_deref(),
            strict,
            force,
            allow_partial,
        ),
        windlass::cli::ImportFrom::Podman {
            file,
            output,
            report,
            strict,
            force,
            allow_partial,
        } => {
            use std::io::Read as _;
            let (name, text) = match file.filter(|f| f.as_os_str() != "-") {
                Some(f) => (f.display().to_string(), std::fs::read_to_string(&f)),
                None => {
                    let mut t = String::new();
                    let r = std::io::stdin().read_to_string(&mut t).map(|_| t);
                    ("stdin".to_string(), r)
                }
            };
            let adopted = text
                .map_err(|source| windlass::import::ImportError::Io {
                    path: name.clone().into(),
                    source,
                })
                .and_then(|t| podman::import(&name, &t));
            adopt::run(
                adopted,
                &output,
                podman::HEADER_APP,
                report.as_deref(),
                strict,
                force,
                allow_partial,
            )
        }
    }
}

/// What `windlass import` does with the result.
struct ImportHow<'a> {
    report_file: Option<&'a std::path::Path>,
    strict: bool,
    force: bool,
    allow_partial: bool,
}

fn import(opts: &windlass::import::Options, out: &std::path::Path, how: &ImportHow) -> ExitCode {
    use windlass::import::ImportError;
    let ImportHow {
        report_file,
        strict,
        force,
        allow_partial,
    } = *how;
    let mut not_imported = Vec::new();
    let result = windlass::import::import(opts).and_then(|imported| {
        eprint!("{}", imported.report.render());
        if let Some(f) = report_file
            && let Err(e) = std::fs::write(f, imported.report.to_json())
        {
            return Err(ImportError::Io {
                path: f.to_path_buf(),
                source: e,
            });
        }
        let losses = imported.report.losses().count();
        if strict && losses > 0 {
            return Err(ImportError::Strict(losses));
        }
        not_imported = imported
            .report
            .not_imported()
            .into_iter()
            .map(|(s, why)| format!("{s} ({why})"))
            .collect();
        windlass::import::write(out, &imported, force).map(|w| (w, imported.manifests.len()))
    });
    match result {
        Ok((w, apps)) => {
            for k in &w.kept {
                windlass::say!("kept: {k} was already declared in windlass.toml");
            }
            windlass::say!(
                "wrote {}: {} created, {} replaced",
                out.display(),
                w.created.len(),
                w.replaced.len()
            );
            if not_imported.is_empty() {
                return ExitCode::SUCCESS;
            }
            let total = apps + not_imported.len();
            windlass::say!(
                "{}: {} of {total} services not imported, the other {apps} written: {}",
                if allow_partial { "warning" } else { "error" },
                not_imported.len(),
                not_imported.join("; ")
            );
            if allow_partial {
                ExitCode::SUCCESS
            } else {
                windlass::say!("(exit 3: pass --allow-partial to accept a partial import)");
                ExitCode::from(3)
            }
        }
        Err(ImportError::Invalid(diags)) => {
            for d in &diags {
                windlass::say!("{}", d.render());
            }
            windlass::say!("error: {}", ImportError::Invalid(Vec::new()));
            ExitCode::from(1)
        }
        Err(e @ (ImportError::Io { .. } | ImportError::Exists(_))) => {
            windlass::say!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            windlass::say!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// The requested targets; none given means all.
fn targets(args: Vec<TargetArg>) -> BTreeSet<Target> {
    if args.is_empty() {
        return Target::ALL.iter().copied().collect();
    }
    args.into_iter()
        .map(|t| match t {
            TargetArg::Quadlet => Target::Quadlet,
            TargetArg::Systemd => Target::Systemd,
            TargetArg::Nixos => Target::Nixos,
            TargetArg::Guix => Target::Guix,
        })
        .collect()
}

fn report(e: PipelineError) -> ExitCode {
    match e {
        PipelineError::Invalid(diags) => {
            for d in &diags {
                windlass::say!("{}", d.render());
            }
            let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
            let files: BTreeSet<_> = errors.iter().map(|d| d.span.path()).collect();
            windlass::say!(
                "error: {} error{} in {} file{}; nothing was written",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                files.len(),
                if files.len() == 1 { "" } else { "s" }
            );
            ExitCode::from(1)
        }
        PipelineError::Emit(e) => {
            windlass::say!("error: {e}; nothing was written");
            ExitCode::from(1)
        }
        other => {
            windlass::say!("error: {other}");
            ExitCode::from(2)
        }
    }
}

/// Writes `bytes` to stdout; a reader that went away (`| head`) is not
/// an error worth a panic.
fn print_bytes(bytes: &[u8]) -> ExitCode {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            windlass::say!("windlass: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod allocator_tests {
    /// The option set by `allocator_settings` is the purge delay: option
    /// 15 holds mimalloc v2's documented default (10 ms) until set.
    #[test]
    fn purge_delay_is_option_15() {
        // SAFETY: reading an option has no precondition.
        let v = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(
            v, 10,
            "option 15 is not mimalloc's purge_delay (default 10)"
        );
        super::allocator_settings();
        // SAFETY: as above.
        let v = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(v, super::PURGE_DELAY_MS);
    }
}
