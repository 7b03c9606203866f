//! Command-line definitions. `main.rs` only wires these to the library.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "windlass",
    version,
    about = "App manifests (TOML) → Podman Quadlet units, systemd timers, NixOS modules, Guix services"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum TargetArg {
    Quadlet,
    Systemd,
    Nixos,
    Guix,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NixosBackendArg {
    /// `virtualisation.oci-containers.containers.<name>` (NixOS-native).
    OciContainers,
    /// The Quadlet files, with Podman's generator, under /etc/containers/systemd.
    Quadlet,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check every manifest in APPS_DIR; report every error of every file.
    Validate {
        apps_dir: PathBuf,
        /// Targets the fleet must be valid for (comma-separated); default: all.
        #[arg(long, value_enum, value_delimiter = ',')]
        target: Vec<TargetArg>,
        /// Podman version the Quadlet output must be valid for, 4.4 to 6.1 (overrides windlass.toml; default 5.4).
        #[arg(long, value_name = "X.Y")]
        podman_version: Option<String>,
    },
    /// Generate host configuration from the manifests in APPS_DIR.
    Generate {
        apps_dir: PathBuf,
        /// Output directory (replaced atomically; unchanged files keep their mtime).
        #[arg(short, long)]
        output: PathBuf,
        /// Targets to generate (comma-separated); default: all.
        #[arg(long, value_enum, value_delimiter = ',')]
        target: Vec<TargetArg>,
        /// Podman version the Quadlet output must be valid for, 4.4 to 6.1 (overrides windlass.toml; default 5.4).
        #[arg(long, value_name = "X.Y")]
        podman_version: Option<String>,
        /// How the NixOS module runs containers.
        #[arg(long, value_enum, default_value = "oci-containers")]
        nixos_backend: NixosBackendArg,
        /// Directory whose templates override the embedded ones (same relative paths).
        #[arg(long, value_name = "DIR")]
        templates: Option<PathBuf>,
        /// Write nothing; exit 1 when OUTPUT differs from what would be generated.
        #[arg(long)]
        check: bool,
    },
    /// Print the JSON Schema of an app manifest.
    Schema,
    /// Print shell completions for SHELL (bash, zsh, fish, elvish,
    /// powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the man page windlass(1) (roff), or with --dir write it and
    /// one page per command (windlass-generate(1), windlass-import-quadlet(1), …).
    #[command(hide = true)]
    Man {
        /// Write every page as DIR/<name>.1 instead of printing windlass(1).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Turn a docker-compose file into app manifests (and windlass.toml) in
    /// APPS_DIR, reporting every key that did not carry over
    /// (`windlass import quadlet DIR` for Quadlet units, `windlass import podman
    /// [FILE]` for `podman container inspect` JSON).
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Import {
        /// Import from something other than a compose file.
        #[command(subcommand)]
        from: Option<ImportFrom>,
        /// The compose file; the override file compose reads beside it
        /// when no -f is given (`compose.override.yml`, …) is read over it.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        compose_file: Option<PathBuf>,
        /// A compose file (repeatable, as `docker compose -f`: each later
        /// file is merged over the earlier ones; no override file is read
        /// unless given). Instead of COMPOSE_FILE.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: Vec<PathBuf>,
        /// The fleet directory to write (created, or added to).
        #[arg(short, long, value_name = "APPS_DIR", required = true)]
        output: Option<PathBuf>,
        /// Project name (prefix of volume and network names); default:
        /// COMPOSE_PROJECT_NAME (from the env file, or with --process-env
        /// the environment), else the file's `name:`, else its directory's
        /// name.
        #[arg(long, value_name = "NAME")]
        project: Option<String>,
        /// Name every app `PFX-<service>` (so that a second project can be
        /// imported into the same fleet, and no app takes the name of a
        /// distribution's service); the service name stays a network
        /// alias, so the others still reach it by it.
        #[arg(long, value_name = "PFX")]
        prefix: Option<String>,
        /// Variables for interpolation, instead of `.env` beside the compose
        /// file (repeatable; a later file wins).
        #[arg(long, value_name = "FILE")]
        env_file: Vec<PathBuf>,
        /// Also read variables from this process's environment; they win
        /// over the env files, as in compose. (`--interpolate` is an older
        /// name for it.)
        #[arg(long, alias = "interpolate")]
        process_env: bool,
        /// Exit 0 even when some services could not be imported (exit 3
        /// otherwise; the others are written either way).
        #[arg(long)]
        allow_partial: bool,
        /// Also write the report as JSON to FILE.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Fail (and write no manifest) when any key was dropped, left
        /// uninterpolated or withheld.
        #[arg(long)]
        strict: bool,
        /// Replace existing manifests of the same names.
        #[arg(long)]
        force: bool,
    },
}

/// `windlass import quadlet …`: sources other than a compose file.
#[derive(Debug, Subcommand)]
pub enum ImportFrom {
    /// Hand-written Quadlet units (.container, .volume, .network) in DIR →
    /// app manifests (and windlass.toml) in APPS_DIR, reporting every
    /// setting that did not carry over by file, line, section and key.
    Quadlet {
        dir: PathBuf,
        /// The fleet directory to write (created, or added to).
        #[arg(short, long, value_name = "APPS_DIR")]
        output: PathBuf,
        /// Also write the report as JSON to FILE.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Fail (and write no manifest) when any setting was dropped.
        #[arg(long)]
        strict: bool,
        /// Replace existing manifests of the same names.
        #[arg(long)]
        force: bool,
        /// Exit 0 even when some containers could not be imported (exit 3
        /// otherwise; the others are written either way).
        #[arg(long)]
        allow_partial: bool,
    },
    /// The JSON of `podman container inspect` (FILE, or stdin when FILE is
    /// absent or `-`) → app manifests (and windlass.toml) in APPS_DIR,
    /// reporting every setting that did not carry over.
    Podman {
        file: Option<PathBuf>,
        /// The fleet directory to write (created, or added to).
        #[arg(short, long, value_name = "APPS_DIR")]
        output: PathBuf,
        /// Also write the report as JSON to FILE.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Fail (and write no manifest) when any setting was dropped.
        #[arg(long)]
        strict: bool,
        /// Replace existing manifests of the same names.
        #[arg(long)]
        force: bool,
        /// Exit 0 even when some containers could not be imported (exit 3
        /// otherwise; the others are written either way).
        #[arg(long)]
        allow_partial: bool,
    },
}

/// The man pages, from the clap definitions: windlass(1) first, then one
/// per (non-hidden) command, named as windlass(1)'s SUBCOMMANDS section
/// refers to them (`windlass-generate.1`, `windlass-import-quadlet.1`, …).
/// Non-ASCII characters are written as groff's `\[uXXXX]` escapes, so the
/// pages render the same whatever the reader's locale.
pub fn man_pages() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    fn walk(cmd: clap::Command, out: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
        let subs: Vec<clap::Command> = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .cloned()
            .collect();
        let man = clap_mangen::Man::new(cmd);
        let mut text = Vec::new();
        man.render(&mut text)?;
        out.push((man.get_filename(), roff_ascii(&text)));
        for sub in subs {
            walk(sub, out)?;
        }
        Ok(())
    }
    let mut cmd = <Cli as clap::CommandFactory>::command().disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    walk(cmd, &mut out)?;
    Ok(out)
}

fn roff_ascii(text: &[u8]) -> Vec<u8> {
    let mut out = String::new();
    for c in String::from_utf8_lossy(text).chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", c as u32));
        }
    }
    out.into_bytes()
}
