//! Guix: `guix/windlass-apps.scm`, the Guile module `(windlass apps)`.
//!
//! It exports `%windlass-app-services` (and the procedure
//! `windlass-app-services` behind it), a list of services to append to an
//! `operating-system`'s services:
//!
//! * the containers, as one `simple-service` extending `oci-service-type`
//!   from `(gnu services containers)` with an `oci-extension` of
//!   `oci-container-configuration`s (plus the fleet's networks and volumes
//!   as `oci-network-configuration`s / `oci-volume-configuration`s). Only
//!   the fields Guix documents are written; what Guix has no field for
//!   (health checks, memory, CPUs, labels, secrets, extra hosts, read-only,
//!   stop timeout, the kernel, security and process settings) becomes
//!   Podman flags in `extra-arguments`, one argument
//!   each, so no value is ever split or re-quoted;
//! * the jobs, as Shepherd timer services (`make-timer-constructor`,
//!   Shepherd ≥ 1.0) extending `shepherd-root-service-type`. Their systemd
//!   calendar expressions are converted exactly into Shepherd calendar
//!   events, or refused (see `calendar`);
//! * `/etc/windlass/generation.json` through `etc-service-type`.
//!
//! Every value goes through `escape::scheme`; the template only lays out
//! expressions already rendered, and the result is read back as
//! S-expressions before it is accepted (so a `--templates` override cannot
//! produce a file Guile would refuse). Secrets are referenced by name or
//! path only.

pub mod calendar;

use std::collections::BTreeMap;

use windlass_contract::{ETC_MANIFEST, Platform, SystemGeneration};

use super::{EmitContext, EmitError, podman};
use crate::escape::json as esc_json;
use crate::escape::scheme::{self, Datum};
use crate::model::*;
use crate::output_file::OutputFile;
use crate::templates::{Var, Writer};

/// The one file this target writes.
pub const FILE: &str = "guix/windlass-apps.scm";
/// The template that lays it out.
pub const TEMPLATE: &str = "guix/apps.scm.j2";
/// The column at which the template places each service expression.
const INDENT: usize = 4;
/// `default-environment-variables` as Guix sets it for every service; a
/// job's own environment replaces it, so it is repeated there.
const GUIX_PATH: &str = "PATH=/run/current-system/profile/bin";
/// The locale the programs Guix starts for the apps run in (see
/// `utf8_host_environment`).
const UTF8_LOCALE: &str = "LC_ALL=C.UTF-8";

pub fn emit(fleet: &Fleet, ctx: &mut EmitContext<'_>) -> Result<Vec<OutputFile>, EmitError> {
    ctx.warnings
        .extend(fleet.apps.iter().filter_map(low_port_warning));
    ctx.warnings
        .extend(fleet.apps.iter().filter_map(container_name_warning));
    // The containers' records are laid out on all cores as the tree is
    // made; the trees are laid out into the file itself as it is
    // rendered, so that no text of megabytes is held apart and copied.
    let containers = containers_service(fleet);
    crate::phase!("guix: containers service");
    let mut timers = Vec::new();
    for app in &fleet.apps {
        for job in &app.jobs {
            timers.push(job_timer(app, job)?);
        }
    }
    let jobs = if timers.is_empty() {
        String::new()
    } else {
        simple_service(
            "windlass-jobs",
            "shepherd-root-service-type",
            Datum::call("list", timers),
        )
        .pretty(INDENT)
    };
    let generation = generation_service(fleet);
    crate::phase!("guix: generation service");

    let write_containers = |out: &mut String| containers.write_pretty(INDENT, out);
    let write_generation = |out: &mut String| generation.write_pretty(INDENT, out);
    let vars = [
        (
            "containers",
            Var::Written(Writer {
                write: &write_containers,
                size: containers.size_hint(INDENT),
            }),
        ),
        ("jobs", Var::Text(&jobs)),
        (
            "generation",
            Var::Written(Writer {
                write: &write_generation,
                size: generation.size_hint(INDENT),
            }),
        ),
    ];
    let content = ctx.templates.render_vars(TEMPLATE, &vars)?;
    crate::phase!("guix: file rendered");
    let invalid = |message: String| EmitError::Invalid {
        file: FILE.to_string(),
        message: format!("{message} (rendered from template {TEMPLATE})"),
    };
    match scheme::check_sexprs(&content) {
        Ok(0) => return Err(invalid("no Scheme expression at all".into())),
        Ok(_) => {}
        Err(e) => return Err(invalid(format!("not a well-formed Scheme file: {e}"))),
    }
    Ok(vec![OutputFile::new(FILE.to_string(), content)])
}

/// Guix's `oci-service-type` runs Podman rootless, as the `oci-container`
/// user: binding a host port below `net.ipv4.ip_unprivileged_port_start`
/// (1024 by default) fails when the container starts, unless the host
/// lowers that setting. Said at generation time, with what to set.
fn low_port_warning(app: &App) -> Option<String> {
    let mut low: Vec<u16> = app
        .container
        .ports
        .iter()
        .map(|p| p.host)
        .filter(|&p| p < 1024)
        .collect();
    low.sort_unstable();
    low.dedup();
    let lowest = *low.first()?;
    let list = low
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let (s, them) = if low.len() == 1 {
        ("", "it")
    } else {
        ("s", "them")
    };
    Some(format!(
        "app `{}`: for Guix, host port{s} {list} below 1024: the oci-container user's rootless Podman cannot bind {them} \
         unless the host sets net.ipv4.ip_unprivileged_port_start to {lowest} or less, e.g. \
         (simple-service 'unprivileged-ports sysctl-service-type '((\"net.ipv4.ip_unprivileged_port_start\" . \"{lowest}\"))) \
         in the operating-system's services (see docs/guix.md)",
        app.name
    ))
}

/// `(simple-service 'NAME TARGET VALUE)`
fn simple_service(name: &str, target: &str, value: Datum) -> Datum {
    Datum::call(
        "simple-service",
        vec![Datum::quote(Datum::sym(name)), Datum::sym(target), value],
    )
}

/// `(FIELD VALUE)`, one field of a Guix record.
fn field(name: &str, value: Datum) -> Datum {
    Datum::call(name, vec![value])
}

fn strings(items: &[String]) -> Datum {
    Datum::call("list", items.iter().map(|s| Datum::str(s)).collect())
}

/// The column of each `(oci-container-configuration` in
/// [`containers_service`]'s layout at [`INDENT`]: `(simple-service`'s
/// arguments, `(oci-extension`'s, `(containers`'s, `(list`'s, each two
/// columns in.
const CONTAINER_INDENT: usize = INDENT + 8;

fn containers_service(fleet: &Fleet) -> Datum {
    containers_service_laid(fleet, true)
}

/// With `laid`, each container's record is laid out on its worker thread
/// and its tree dropped there (the whole tree of a large fleet held the
/// peak of the generator's memory); the text is the same either way
/// (tested).
fn containers_service_laid(fleet: &Fleet, laid: bool) -> Datum {
    let containers = crate::par::map(&fleet.apps, |app| {
        let c = container(app);
        if laid { c.laid(CONTAINER_INDENT) } else { c }
    });
    let mut ext = vec![field("containers", Datum::call("list", containers))];
    if !fleet.networks.is_empty() {
        ext.push(field(
            "networks",
            Datum::call(
                "list",
                fleet
                    .networks
                    .iter()
                    .map(|(name, net)| network(name, net))
                    .collect(),
            ),
        ));
    }
    if !fleet.volumes.is_empty() {
        ext.push(field(
            "volumes",
            Datum::call(
                "list",
                fleet
                    .volumes
                    .iter()
                    .map(|(name, vol)| volume(name, vol))
                    .collect(),
            ),
        ));
    }
    simple_service(
        "windlass-containers",
        "oci-service-type",
        Datum::call("oci-extension", ext),
    )
}

/// The environment of the program that runs `podman run`, on top of the
/// `HOME` Guix gives it: a UTF-8 locale. Guix's entrypoint is a Guile
/// program started by the Shepherd with only `HOME` set, so Guile would
/// start in the C locale and `execlp` would turn every character outside
/// ASCII into `?`. Guix's own services use the same two variables
/// (`GUIX_LOCPATH` naming `libc-utf8-locales-for-target`, whose C.UTF-8
/// Guix's C library then finds); the container's own environment is
/// unaffected (Podman passes only `--env`).
fn utf8_host_environment() -> Datum {
    Datum::call(
        "list",
        vec![
            Datum::call("cons", vec![Datum::str("GUIX_LOCPATH"), utf8_locales()]),
            Datum::str(UTF8_LOCALE),
        ],
    )
}

/// Guix's UTF-8 locales (C.UTF-8 among them), for `GUIX_LOCPATH`.
fn utf8_locales() -> Datum {
    Datum::call(
        "file-append",
        vec![
            Datum::call("libc-utf8-locales-for-target", vec![]),
            Datum::str("/lib/locale"),
        ],
    )
}

/// The Shepherd service names an app depends on: `requires`, then
/// `wants` (Shepherd has no weaker kind of dependency).
fn requirement(app: &App) -> Vec<Datum> {
    let mut names: Vec<&String> = Vec::new();
    for dep in app.requires.iter().chain(&app.wants) {
        if !names.contains(&dep) {
            names.push(dep);
        }
    }
    names.into_iter().map(|n| Datum::sym(n)).collect()
}

fn container(app: &App) -> Datum {
    let c = &app.container;
    let mut f = vec![
        field("image", Datum::str(&c.image.full)),
        // The Shepherd service name; Guix also names the container after it
        // (`--name`), so jobs can `podman exec <app>` as with Quadlet.
        field("provision", Datum::str(&app.name)),
    ];
    let deps = requirement(app);
    if !deps.is_empty() {
        f.push(field("requirement", Datum::quote(Datum::list(deps))));
    }
    if let Some(ep) = &c.entrypoint {
        // Guix joins a list-valued entrypoint with spaces; Podman's JSON
        // form keeps every argument intact.
        f.push(field("entrypoint", Datum::str(&esc_json::ascii_array(ep))));
    }
    if let Some(cmd) = &c.command {
        f.push(field("command", strings(cmd)));
    }
    if let Some(user) = &c.user {
        let spec = match &c.group {
            Some(g) => format!("{user}:{g}"),
            None => user.clone(),
        };
        f.push(field("container-user", Datum::str(&spec)));
    }
    f.push(field("host-environment", utf8_host_environment()));
    if !c.env.is_empty() {
        f.push(field(
            "environment",
            Datum::call(
                "list",
                c.env
                    .iter()
                    .map(|(k, v)| Datum::quote(Datum::pair(Datum::str(k), Datum::str(v))))
                    .collect(),
            ),
        ));
    }
    if !c.ports.is_empty() {
        let ports: Vec<String> = c.ports.iter().map(ToString::to_string).collect();
        f.push(field("ports", strings(&ports)));
    }
    let mut volumes: Vec<String> = c
        .volumes
        .iter()
        .map(|m| {
            let src = match &m.source {
                VolumeSource::Named(n) | VolumeSource::Host(n) => n,
            };
            format!("{src}:{}{}", m.target, m.options())
        })
        .collect();
    volumes.extend(podman::secret_volumes(c));
    if !volumes.is_empty() {
        f.push(field("volumes", strings(&volumes)));
    }
    if let Some(first) = c.networks.first() {
        f.push(field("network", Datum::str(&network_arg(app, first))));
    }
    // Shepherd respawns a service whenever its process ends, whatever the
    // exit status: "on-failure" is the closest it gets.
    f.push(field("respawn?", Datum::Bool(c.restart != Restart::No)));
    let extra = extra_arguments(app);
    if !extra.is_empty() {
        f.push(field("extra-arguments", strings(&extra)));
    }
    Datum::call("oci-container-configuration", f)
}

/// `--network`'s value for network `n`: its aliases and addresses as
/// Podman's per-network options. Guix names the container after its
/// Shepherd service (`--name <provision>`) and stops it by that name
/// (`podman rm -f <provision>`), so a `container_name` cannot rename it:
/// it becomes one more alias on each network instead, which keeps it
/// reachable by that name (see `container_name_warning`).
fn network_arg(app: &App, n: &str) -> String {
    let c = &app.container;
    match &c.container_name {
        Some(cn) if n != "host" && cn != &app.name => {
            let mut o = c.network_options.get(n).cloned().unwrap_or_default();
            if !o.aliases.contains(cn) {
                o.aliases.push(cn.clone());
            }
            format!("{n}:{}", o.podman_options())
        }
        _ => c.network_arg(n, n),
    }
}

/// What becomes of a `container_name` under Guix (see `network_arg`).
fn container_name_warning(app: &App) -> Option<String> {
    let cn = app.container.container_name.as_ref()?;
    if cn == &app.name {
        return None;
    }
    let nets: Vec<&String> = app
        .container
        .networks
        .iter()
        .filter(|n| *n != "host")
        .collect();
    let carried = if nets.is_empty() {
        "it has no network to carry it as an alias on".to_string()
    } else {
        format!(
            "it is a network alias on {} instead, so other containers still reach it by that name",
            nets.iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Some(format!(
        "app `{}`: for Guix the container is named `{}` after its Shepherd service, not `container_name` `{cn}` (Shepherd stops it by that name); {carried}",
        app.name, app.name
    ))
}

/// Podman flags for what `oci-container-configuration` has no field for,
/// each one whole argument (`--flag=value`).
fn extra_arguments(app: &App) -> Vec<String> {
    let c = &app.container;
    let mut a = Vec::new();
    for f in &c.env_files {
        a.push(format!("--env-file={f}"));
    }
    for s in &c.secrets {
        if let Some(spec) = podman::secret_spec(s) {
            a.push(format!("--secret={spec}"));
        }
    }
    for n in c.networks.iter().skip(1) {
        a.push(format!("--network={}", network_arg(app, n)));
    }
    for (host, ip) in &c.add_hosts {
        a.push(format!("--add-host={host}:{ip}"));
    }
    let labels = podman::labels(app, true);
    for (k, v) in &labels {
        a.push(format!("--label={k}={v}"));
    }
    if c.read_only {
        a.push("--read-only".into());
    }
    if let Some(h) = &app.health {
        a.extend(podman::health_flags(h));
    }
    a.extend(podman::resource_flags(c));
    a.extend(podman::setting_flags(c));
    a
}

fn labels(labels: &BTreeMap<String, String>) -> Datum {
    Datum::call(
        "list",
        labels
            .iter()
            .map(|(k, v)| Datum::quote(Datum::pair(Datum::str(k), Datum::str(v))))
            .collect(),
    )
}

fn network(name: &str, net: &Network) -> Datum {
    let mut f = vec![field("name", Datum::str(name))];
    if let Some(d) = &net.driver {
        f.push(field("driver", Datum::str(d)));
    }
    if let Some(g) = &net.gateway {
        f.push(field("gateway", Datum::str(g)));
    }
    if net.internal {
        f.push(field("internal?", Datum::Bool(true)));
    }
    if net.ipv6 {
        f.push(field("ipv6?", Datum::Bool(true)));
    }
    if let Some(s) = &net.subnet {
        f.push(field("subnet", Datum::str(s)));
    }
    if !net.labels.is_empty() {
        f.push(field("labels", labels(&net.labels)));
    }
    Datum::call("oci-network-configuration", f)
}

fn volume(name: &str, vol: &Volume) -> Datum {
    let mut f = vec![field("name", Datum::str(name))];
    if !vol.labels.is_empty() {
        f.push(field("labels", labels(&vol.labels)));
    }
    if let Some(d) = &vol.driver {
        f.push(field(
            "extra-arguments",
            strings(&[format!("--driver={d}")]),
        ));
    }
    Datum::call("oci-volume-configuration", f)
}

fn ints(values: &[u32]) -> Datum {
    Datum::quote(Datum::list(
        values.iter().map(|v| Datum::Int(i64::from(*v))).collect(),
    ))
}

fn calendar_event(ev: &calendar::CalendarEvent) -> Datum {
    let mut args = Vec::new();
    let mut constrain = |kw: &str, value: Datum| {
        args.push(Datum::kw(kw));
        args.push(value);
    };
    if let Some(m) = &ev.months {
        constrain("months", ints(m));
    }
    if let Some(d) = &ev.days_of_month {
        constrain("days-of-month", ints(d));
    }
    if let Some(w) = &ev.days_of_week {
        constrain(
            "days-of-week",
            Datum::quote(Datum::list(w.iter().map(|d| Datum::sym(d)).collect())),
        );
    }
    if let Some(h) = &ev.hours {
        constrain("hours", ints(h));
    }
    if let Some(m) = &ev.minutes {
        constrain("minutes", ints(m));
    }
    if let Some(s) = &ev.seconds {
        constrain("seconds", ints(s));
    }
    Datum::call("calendar-event", args)
}

/// `(getpwnam #$oci-user)`, evaluated by Shepherd when the timer starts.
fn oci_passwd() -> Datum {
    Datum::call("getpwnam", vec![Datum::ungexp(Datum::sym("oci-user"))])
}

fn job_timer(app: &App, job: &Job) -> Result<Datum, EmitError> {
    let ev = calendar::convert(&job.schedule).map_err(|why| EmitError::Unsupported {
        app: app.name.clone(),
        message: format!(
            "job `{}`: the schedule {:?} cannot become a Shepherd calendar event for Guix: {why}; \
             change the schedule, or generate without Guix (--target quadlet,systemd,nixos)",
            job.name, job.schedule
        ),
    })?;
    let name = format!("{}-{}", app.name, job.name);
    let mut doc = format!(
        "windlass job {} of {} ({})",
        job.name, app.name, job.schedule
    );
    // What a Shepherd timer cannot do is said where `herd doc` shows it.
    if job.persistent {
        doc.push_str("; missed runs are not caught up (no Persistent= in Shepherd)");
    }
    if job.randomized_delay.is_some() {
        doc.push_str("; no randomized delay in Shepherd");
    }

    // Jobs run as the user that owns the containers (rootless Podman under
    // oci-service-type), with Guix's default PATH, that user's HOME and a
    // UTF-8 locale. The Shepherd converts a command's arguments in its own
    // locale, which is C on Guix System: every character outside ASCII
    // would reach the job as `?`. So the Shepherd runs a program of the
    // job's own, which starts in C.UTF-8 and execs the command with its
    // arguments intact.
    let program = Datum::call(
        "program-file",
        vec![
            Datum::str(&format!("windlass-job-{}-{}", app.name, job.name)),
            Datum::gexp(Datum::call(
                "let",
                vec![
                    Datum::list(vec![Datum::list(vec![
                        Datum::sym("argv"),
                        Datum::quote(Datum::list(
                            job.command.iter().map(|s| Datum::str(s)).collect(),
                        )),
                    ])]),
                    Datum::call(
                        "apply",
                        vec![
                            Datum::sym("execlp"),
                            Datum::call("car", vec![Datum::sym("argv")]),
                            Datum::sym("argv"),
                        ],
                    ),
                ],
            )),
        ],
    );
    let command = Datum::call(
        "command",
        vec![
            Datum::call("list", vec![Datum::ungexp(program)]),
            Datum::kw("user"),
            Datum::ungexp(Datum::sym("oci-user")),
            Datum::kw("group"),
            Datum::call(
                "group:name",
                vec![Datum::call(
                    "getgrgid",
                    vec![Datum::call("passwd:gid", vec![oci_passwd()])],
                )],
            ),
            Datum::kw("environment-variables"),
            Datum::call(
                "list",
                vec![
                    Datum::str(GUIX_PATH),
                    Datum::call(
                        "string-append",
                        vec![
                            Datum::str("HOME="),
                            Datum::call("passwd:dir", vec![oci_passwd()]),
                        ],
                    ),
                    Datum::call(
                        "string-append",
                        vec![Datum::str("GUIX_LOCPATH="), Datum::ungexp(utf8_locales())],
                    ),
                    Datum::str(UTF8_LOCALE),
                ],
            ),
        ],
    );
    let mut constructor = vec![
        calendar_event(&ev),
        command,
        Datum::kw("wait-for-termination?"),
        Datum::Bool(true),
    ];
    if let Some(us) = job.timeout {
        constructor.push(Datum::kw("max-duration"));
        constructor.push(Datum::Int(
            i64::try_from(us.div_ceil(1_000_000)).unwrap_or(i64::MAX),
        ));
    }
    Ok(Datum::call(
        "shepherd-service",
        vec![
            field(
                "provision",
                Datum::quote(Datum::list(vec![Datum::sym(&name)])),
            ),
            field(
                "requirement",
                Datum::quote(Datum::list(vec![Datum::sym("user-processes")])),
            ),
            field("documentation", Datum::str(&doc)),
            field(
                "modules",
                Datum::quote(Datum::list(vec![Datum::list(vec![
                    Datum::sym("shepherd"),
                    Datum::sym("service"),
                    Datum::sym("timer"),
                ])])),
            ),
            field(
                "start",
                Datum::gexp(Datum::call("make-timer-constructor", constructor)),
            ),
            field(
                "stop",
                Datum::gexp(Datum::call("make-timer-destructor", vec![])),
            ),
            field(
                "actions",
                Datum::call("list", vec![Datum::sym("shepherd-trigger-action")]),
            ),
        ],
    ))
}

/// This app's entry in `/etc/windlass/generation.json`: its unit is its
/// Shepherd service, which also names the container; volumes and
/// networks keep their declared names, in the hooks' `podman run` lines
/// as in the volumes it purges. The hooks' `podman run` lines address
/// the `oci-container` user's rootless Podman, as the containers do.
pub fn app_contract(app: &App) -> windlass_contract::App {
    let names = podman::Names {
        container: &app.name,
        volume_prefix: "",
        network_prefix: "",
    };
    podman::app_contract(app, app.name.clone(), &names)
}

/// `/etc/windlass/generation.json`: the apps and their health contracts,
/// each app's `unit` being its Shepherd service name.
fn generation_service(fleet: &Fleet) -> Datum {
    // Each app's JSON laid out on all cores, then put in place.
    let apps = crate::par::map(&fleet.apps, |app| {
        windlass_contract::app_json(&app_contract(app))
    });
    let text = SystemGeneration::new(Platform::Guix, None, Vec::new()).to_json_with(&apps);
    // One string per line of JSON, so the file stays readable.
    let lines = Datum::Lines(text);
    simple_service(
        "windlass-generation",
        "etc-service-type",
        Datum::call(
            "list",
            vec![Datum::call(
                "list",
                vec![
                    Datum::str(ETC_MANIFEST),
                    Datum::call(
                        "plain-file",
                        vec![Datum::str("windlass-generation.json"), lines],
                    ),
                ],
            )],
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::templates::Templates;

    fn fleet(dir: &str) -> Fleet {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        crate::model::load_fleet(&root)
            .unwrap()
            .fleet
            .expect("valid fleet")
    }

    fn run(fleet: &Fleet) -> Result<Vec<OutputFile>, EmitError> {
        let templates = Templates::load(None).unwrap();
        let mut ctx = EmitContext {
            podman: fleet.podman,
            templates: &templates,
            nixos_backend: Default::default(),
            warnings: Vec::new(),
        };
        emit(fleet, &mut ctx)
    }

    /// Laying each container out on its own gives the text of laying out
    /// the whole tree, for every fleet the tests have (short and long
    /// records, networks, volumes, aliases, hooks); and a piece laid out
    /// for another column would be caught in debug builds.
    #[test]
    fn containers_laid_out_one_at_a_time_read_as_the_whole_tree() {
        for dir in [
            "../examples",
            "tests/fleets/torture",
            "tests/fleets/settings",
            "tests/fleets/names",
            "tests/fleets/hooks",
            "tests/fleets/quotes",
        ] {
            let f = fleet(dir);
            let whole = containers_service_laid(&f, false).pretty(INDENT);
            let laid = containers_service_laid(&f, true).pretty(INDENT);
            assert_eq!(laid, whole, "{dir}");
            assert!(whole.contains(&format!(
                "\n{}(oci-container-configuration\n",
                " ".repeat(CONTAINER_INDENT)
            )));
        }
    }

    #[test]
    fn the_torture_fleet_becomes_one_ascii_module_every_string_of_which_reads_back() {
        let f = fleet("tests/fleets/torture");
        let files = run(&f).unwrap();
        assert_eq!(files.len(), 1);
        let text = &files[0].content;
        assert_eq!(files[0].path, FILE);
        assert!(text.is_ascii(), "non-ASCII is escaped");
        assert!(scheme::check_sexprs(text).unwrap() >= 3);
        let app = f.apps.iter().find(|a| a.name == "torture").unwrap();
        for arg in app.container.command.iter().flatten() {
            assert!(text.contains(&scheme::string(arg)), "{arg:?}");
        }
    }

    #[test]
    fn wants_and_requires_become_one_requirement_list_without_duplicates() {
        let mut f = fleet("../examples");
        let app = f.apps.iter_mut().find(|a| a.name == "nextcloud").unwrap();
        app.wants.push("postgres".into());
        let names: Vec<String> = requirement(app).iter().map(Datum::flat).collect();
        assert_eq!(names, ["postgres", "redis"]);
    }

    #[test]
    fn an_unconvertible_schedule_names_the_app_and_the_job() {
        let mut f = fleet("../examples");
        let app = f.apps.iter_mut().find(|a| a.name == "lnd").unwrap();
        app.jobs[0].schedule = "*-*~01 03:00".into();
        match run(&f) {
            Err(EmitError::Unsupported { app, message }) => {
                assert_eq!(app, "lnd");
                assert!(message.contains("job `backup`"), "{message}");
                assert!(message.contains("end of the month"), "{message}");
            }
            other => panic!("expected Unsupported, got {other:?}"),
        }
    }
}
