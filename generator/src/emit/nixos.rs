//! NixOS module: `nixos/default.nix` importing `options.nix`, `fleet.nix`
//! and `apps/<app>.nix`.
//!
//! Every value is built as a [`Nix`] tree and rendered by `escape::nix`;
//! templates only lay out the fragments. Each file is a module function
//! whose `config` has a fixed set of top-level attributes (`windlass`,
//! `virtualisation`, `systemd`, `environment`, `system`), each wrapped in
//! `lib.mkIf` where it depends on the app being enabled: that keeps the
//! module system free of recursion when `services.windlass.apps` merges
//! these files' `config` into its own.
//!
//! Two backends:
//! * `oci-containers`: `virtualisation.oci-containers.containers.<app>`
//!   (service `podman-<app>.service`), with `podman.sdnotify = "healthy"`
//!   for apps with a container health check; what the NixOS module has no
//!   option for goes to `extraOptions`. Networks and volumes are created by
//!   oneshot services `windlass-network-<n>` / `windlass-volume-<n>`.
//! * `quadlet`: the exact text of `quadlet/*` under
//!   `environment.etc."containers/systemd/…"`, the podman module (whose
//!   package brings Podman's generator: never also `systemd.generators`,
//!   a second link of one name fails the NixOS build), a hash drop-in per
//!   unit, and Quadlet's dry run at build time.

use std::collections::BTreeMap;

use serde_json::Value as Json;
use windlass_contract::{Platform, SystemGeneration};

use super::{EmitContext, EmitError, NixosBackend, podman};
use crate::escape::json;
use crate::escape::nix::{self, Nix};
use crate::escape::systemd as esc;
use crate::model::time::format_timespan;
use crate::model::*;
use crate::output_file::OutputFile;
use crate::templates::Var;

type Attrs = Vec<(Vec<String>, Nix)>;

fn path(segments: &[&str]) -> Vec<String> {
    segments.iter().map(|s| s.to_string()).collect()
}

fn set(attrs: &mut Attrs, segments: &[&str], value: Nix) {
    attrs.push((path(segments), value));
}

pub fn emit(
    fleet: &Fleet,
    quadlet: &[OutputFile],
    ctx: &mut EmitContext<'_>,
) -> Result<Vec<OutputFile>, EmitError> {
    let backend = ctx.nixos_backend;
    let quadlet_text: BTreeMap<&str, &str> = quadlet
        .iter()
        .map(|f| (f.path.as_str(), f.content.as_str()))
        .collect();
    // The fleet module is laid out while the apps' modules are.
    let shared = ctx.fresh();
    let (per_app, fleet_file) = crate::par::join(
        || {
            super::per_app(fleet, ctx, |app, c| {
                let file = format!("nixos/apps/{}.nix", app.name);
                let text = app_module(app, backend, &quadlet_text, c, &file)?;
                Ok(OutputFile::new(file, text))
            })
        },
        || fleet_module(fleet, backend, &quadlet_text, &shared),
    );
    let mut files = per_app?;
    crate::phase!("nixos: app and fleet modules");
    let imports: Vec<String> = fleet.apps.iter().map(|a| app_import(&a.name)).collect();
    files.push(render_file(
        ctx,
        "nixos/options.nix.j2",
        "nixos/options.nix".into(),
        &[],
    )?);
    files.push(fleet_file?);
    files.push(render_file(
        ctx,
        "nixos/default.nix.j2",
        "nixos/default.nix".into(),
        &[("imports", Var::List(&imports))],
    )?);
    Ok(files)
}

/// `./apps/<name>.nix` as a path literal (app names are `[a-z][a-z0-9-]*`).
fn app_import(name: &str) -> String {
    assert!(
        crate::model::values::is_name(name),
        "app names are checked by the model"
    );
    format!("./apps/{name}.nix")
}

/// The systemd service that runs `app` under `backend`.
pub fn service_name(app: &App, backend: NixosBackend) -> String {
    match backend {
        NixosBackend::OciContainers => format!("podman-{}.service", app.name),
        NixosBackend::Quadlet => app.service_name(),
    }
}

fn service_attr(app_name: &str, backend: NixosBackend) -> String {
    match backend {
        NixosBackend::OciContainers => format!("podman-{app_name}"),
        NixosBackend::Quadlet => app_name.to_string(),
    }
}

/// serde_json value → Nix value (objects keep serde_json's sorted order).
fn from_json(v: Json) -> Nix {
    match v {
        Json::Null => Nix::Null,
        Json::Bool(b) => Nix::Bool(b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Nix::Int(i),
            None => Nix::Str(n.to_string()),
        },
        Json::String(s) => Nix::Str(s),
        Json::Array(a) => Nix::List(a.into_iter().map(from_json).collect()),
        Json::Object(o) => Nix::Attrs(
            o.into_iter()
                .map(|(k, v)| (vec![k], from_json(v)))
                .collect(),
        ),
    }
}

/// This app's entry in `/etc/windlass/generation.json`: its unit, its
/// hooks and the volumes it purges, naming the container, volumes and
/// networks as `backend` does.
pub fn app_contract(
    app: &App,
    backend: NixosBackend,
    podman_version: PodmanVersion,
) -> windlass_contract::App {
    let names = match backend {
        // The units are Quadlet's, and so are the objects' names.
        NixosBackend::Quadlet => super::quadlet::names(app, podman_version),
        // The module names the container after the app unless
        // `container_name` renames it (`--name`); windlass's oneshots
        // create volumes and networks under their declared names.
        NixosBackend::OciContainers => podman::Names {
            container: app.container_name(),
            volume_prefix: "",
            network_prefix: "",
        },
    };
    podman::app_contract(app, service_name(app, backend), &names)
}

fn contract(app: &App, backend: NixosBackend, podman_version: PodmanVersion) -> Nix {
    let c = app_contract(app, backend, podman_version);
    from_json(serde_json::to_value(c).expect("contract types serialize"))
}

fn app_module(
    app: &App,
    backend: NixosBackend,
    quadlet: &BTreeMap<&str, &str>,
    ctx: &EmitContext<'_>,
    file: &str,
) -> Result<String, EmitError> {
    let name = &app.name;
    let mut windlass: Attrs = Vec::new();
    set(
        &mut windlass,
        &["generation", name],
        contract(app, backend, ctx.podman),
    );
    let mut virtualisation: Attrs = Vec::new();
    let mut systemd: Attrs = Vec::new();
    let unit_attr = service_attr(name, backend);
    match backend {
        NixosBackend::OciContainers => {
            set(
                &mut virtualisation,
                &["oci-containers", "containers", name],
                oci_container(app),
            );
            let svc = oci_service_overrides(app);
            if !svc.is_empty() {
                set(&mut systemd, &["services", &unit_attr], Nix::Attrs(svc));
            }
        }
        NixosBackend::Quadlet => {
            let key = format!("quadlet/{name}.container");
            let text = quadlet
                .get(key.as_str())
                .ok_or_else(|| EmitError::Invalid {
                    file: file.to_string(),
                    message: format!("no Quadlet unit {key} to embed"),
                })?;
            set(
                &mut windlass,
                &["quadletUnits", &format!("{name}.container")],
                quadlet_unit(&app.service_name(), text),
            );
        }
    }
    for job in &app.jobs {
        let unit = format!("{name}-{}", job.name);
        let (service, timer) = job_units(app, job, &service_name(app, backend));
        set(&mut systemd, &["services", &unit], service);
        set(&mut systemd, &["timers", &unit], timer);
    }
    let mut sections = Vec::new();
    for (key, attrs) in [("virtualisation", virtualisation), ("systemd", systemd)] {
        if !attrs.is_empty() {
            sections.push((key.to_string(), Nix::Attrs(attrs).render_at(2)));
        }
    }
    // A required app that was disabled: say so instead of a missing unit.
    let assertions: Vec<Nix> = app
        .requires
        .iter()
        .map(|dep| {
            Nix::Attrs(vec![
                (
                    path(&["assertion"]),
                    Nix::Checked(format!("config.windlass.apps.{}.enable", nix::attr_name(dep))),
                ),
                (
                    path(&["message"]),
                    Nix::str(format!(
                        "windlass app `{name}` requires app `{dep}`, which is disabled (windlass.apps.{dep}.enable = false)"
                    )),
                ),
            ])
        })
        .collect();
    if !assertions.is_empty() {
        sections.push(("assertions".into(), Nix::List(assertions).render_at(2)));
    }
    let source = nix::string(&app.source);
    let attr = nix::attr_name(name);
    let windlass = Nix::Attrs(windlass).render_at(3);
    let vars = [
        ("source", Var::Text(&source)),
        ("name", Var::Text(&attr)),
        ("windlass", Var::Text(&windlass)),
        ("sections", Var::Entries(&sections)),
    ];
    render(ctx, "nixos/app.nix.j2", file, &vars)
}

fn quadlet_unit(service: &str, text: &str) -> Nix {
    Nix::Attrs(vec![
        (path(&["service"]), Nix::str(service)),
        (path(&["text"]), Nix::Text(text.to_string())),
    ])
}

/// `virtualisation.oci-containers.containers.<app>`.
fn oci_container(app: &App) -> Nix {
    let c = &app.container;
    let mut a: Attrs = Vec::new();
    set(&mut a, &["image"], Nix::str(c.image.full.clone()));
    if let Some(ep) = &c.entrypoint {
        // Podman reads a JSON array given to --entrypoint as the exec form;
        // NixOS passes the value as one shell-quoted argument.
        set(&mut a, &["entrypoint"], Nix::str(json::ascii_array(ep)));
    }
    if let Some(cmd) = &c.command {
        set(&mut a, &["cmd"], Nix::strs(cmd.iter().cloned()));
    }
    if let Some(u) = &c.user {
        let user = match &c.group {
            Some(g) => format!("{u}:{g}"),
            None => u.clone(),
        };
        set(&mut a, &["user"], Nix::str(user));
    }
    if !c.ports.is_empty() {
        set(
            &mut a,
            &["ports"],
            Nix::strs(c.ports.iter().map(|p| p.to_string())),
        );
    }
    let mut volumes: Vec<String> = c
        .volumes
        .iter()
        .map(|m| {
            let src = match &m.source {
                VolumeSource::Named(n) => n.clone(),
                VolumeSource::Host(p) => p.clone(),
            };
            format!("{src}:{}{}", m.target, m.options())
        })
        .collect();
    volumes.extend(podman::secret_volumes(c));
    let mut extra: Vec<String> = c
        .secrets
        .iter()
        .filter_map(podman::secret_spec)
        .map(|spec| format!("--secret={spec}"))
        .collect();
    if !volumes.is_empty() {
        set(&mut a, &["volumes"], Nix::strs(volumes));
    }
    if !c.env.is_empty() {
        set(
            &mut a,
            &["environment"],
            Nix::Attrs(
                c.env
                    .iter()
                    .map(|(k, v)| (vec![k.clone()], Nix::str(v.clone())))
                    .collect(),
            ),
        );
    }
    if !c.env_files.is_empty() {
        set(
            &mut a,
            &["environmentFiles"],
            Nix::strs(c.env_files.iter().cloned()),
        );
    }
    let labels = podman::labels(app, true);
    set(
        &mut a,
        &["labels"],
        Nix::Attrs(
            labels
                .iter()
                .map(|(k, v)| (vec![k.clone()], Nix::str(v.clone())))
                .collect(),
        ),
    );
    if !c.networks.is_empty() {
        // `name:alias=…,ip=…`: the module passes each as `--network=`.
        set(
            &mut a,
            &["networks"],
            Nix::strs(c.networks.iter().map(|n| c.network_arg(n, n))),
        );
    }
    if let Some(cn) = &c.container_name {
        // The module names the container after its attribute (`--name`);
        // a later `--name` wins in Podman, and the module stops and
        // removes the container by its cidfile, not by name.
        extra.push(format!("--name={cn}"));
    }
    for (host, ip) in &c.add_hosts {
        extra.push(format!("--add-host={host}:{ip}"));
    }
    if c.read_only {
        extra.push("--read-only".into());
    }
    let healthy = app.health.as_ref().is_some_and(|h| h.cmd.is_some());
    if let Some(h) = &app.health {
        extra.extend(podman::health_flags(h));
    }
    extra.extend(podman::resource_flags(c));
    extra.extend(podman::setting_flags(c));
    if !app.requires.is_empty() {
        set(
            &mut a,
            &["dependsOn"],
            Nix::strs(app.requires.iter().cloned()),
        );
    }
    if healthy {
        set(&mut a, &["podman", "sdnotify"], Nix::str("healthy"));
    }
    if !extra.is_empty() {
        set(&mut a, &["extraOptions"], Nix::strs(extra));
    }
    Nix::Attrs(a)
}

/// Settings of `podman-<app>.service` the oci-containers module does not
/// make options of: restart policy, timeouts, soft dependencies, and the
/// networks and volumes the container needs created first.
fn oci_service_overrides(app: &App) -> Attrs {
    let c = &app.container;
    let mut s: Attrs = Vec::new();
    let mut needs: Vec<String> = Vec::new();
    for n in &c.networks {
        if n != "host" {
            needs.push(format!("windlass-network-{n}.service"));
        }
    }
    for m in &c.volumes {
        if let VolumeSource::Named(v) = &m.source {
            needs.push(format!("windlass-volume-{v}.service"));
        }
    }
    needs.dedup();
    let wants: Vec<String> = app
        .wants
        .iter()
        .map(|w| format!("podman-{w}.service"))
        .collect();
    if !needs.is_empty() {
        set(&mut s, &["requires"], Nix::strs(needs.iter().cloned()));
    }
    if !wants.is_empty() {
        set(&mut s, &["wants"], Nix::strs(wants.iter().cloned()));
    }
    let after: Vec<String> = needs.into_iter().chain(wants).collect();
    if !after.is_empty() {
        set(&mut s, &["after"], Nix::strs(after));
    }
    let force = |v: Nix| Nix::apply("lib.mkForce", vec![v]);
    if c.restart != Restart::Always {
        set(
            &mut s,
            &["serviceConfig", "Restart"],
            force(Nix::str(c.restart.as_str())),
        );
    }
    // Same start budget as the Quadlet unit: pulling and the health gate
    // both happen before the unit is active.
    let start = app.update.health_deadline.div_ceil(1_000_000).max(90);
    set(
        &mut s,
        &["serviceConfig", "TimeoutStartSec"],
        force(Nix::Int(start as i64)),
    );
    if let Some(us) = c.stop_timeout {
        set(
            &mut s,
            &["serviceConfig", "TimeoutStopSec"],
            force(Nix::Int((us.div_ceil(1_000_000) + 30) as i64)),
        );
    }
    s
}

/// `systemd.services.<app>-<job>` and `systemd.timers.<app>-<job>`.
fn job_units(app: &App, job: &Job, app_service: &str) -> (Nix, Nix) {
    let mut svc: Attrs = Vec::new();
    set(
        &mut svc,
        &["description"],
        Nix::str(esc::text(&format!(
            "windlass job {} of {}",
            job.name, app.name
        ))),
    );
    set(&mut svc, &["after"], Nix::strs([app_service.to_string()]));
    // systemd looks a relative command up in a search path fixed at build
    // time, which on NixOS holds neither podman nor the system profile.
    let bins = Nix::List(vec![
        Nix::Code("config.virtualisation.podman.package"),
        Nix::str("/run/current-system/sw"),
    ]);
    set(&mut svc, &["path"], bins.clone());
    set(&mut svc, &["serviceConfig", "Type"], Nix::str("oneshot"));
    set(
        &mut svc,
        &["serviceConfig", "ExecSearchPath"],
        Nix::apply("lib.makeBinPath", vec![bins]),
    );
    // NixOS writes the value verbatim into the unit: the same systemd
    // escaping as the systemd target's ExecStart.
    set(
        &mut svc,
        &["serviceConfig", "ExecStart"],
        Nix::str(esc::exec_line(&job.command)),
    );
    if let Some(t) = job.timeout {
        set(
            &mut svc,
            &["serviceConfig", "TimeoutStartSec"],
            Nix::str(format_timespan(t)),
        );
    }
    let mut timer: Attrs = Vec::new();
    set(
        &mut timer,
        &["description"],
        Nix::str(esc::text(&format!(
            "windlass timer for job {} of {}",
            job.name, app.name
        ))),
    );
    set(&mut timer, &["wantedBy"], Nix::strs(["timers.target"]));
    set(
        &mut timer,
        &["timerConfig", "OnCalendar"],
        Nix::str(esc::text(&job.schedule)),
    );
    set(
        &mut timer,
        &["timerConfig", "Persistent"],
        Nix::Bool(job.persistent),
    );
    if let Some(d) = job.randomized_delay {
        set(
            &mut timer,
            &["timerConfig", "RandomizedDelaySec"],
            Nix::str(format_timespan(d)),
        );
    }
    (Nix::Attrs(svc), Nix::Attrs(timer))
}

/// `podman <kind> create` arguments for a network or volume.
fn network_args(name: &str, net: &Network) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(d) = &net.driver {
        args.push(format!("--driver={d}"));
    }
    if let Some(s) = &net.subnet {
        args.push(format!("--subnet={s}"));
    }
    if let Some(g) = &net.gateway {
        args.push(format!("--gateway={g}"));
    }
    if net.internal {
        args.push("--internal".into());
    }
    if net.ipv6 {
        args.push("--ipv6".into());
    }
    for (k, v) in &net.labels {
        args.push(format!("--label={k}={v}"));
    }
    args.push(name.to_string());
    args
}

fn volume_args(name: &str, vol: &Volume) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(d) = &vol.driver {
        args.push(format!("--driver={d}"));
    }
    for (k, v) in &vol.labels {
        args.push(format!("--label={k}={v}"));
    }
    args.push(name.to_string());
    args
}

/// A oneshot that creates a Podman network or volume unless it exists.
fn create_service(kind: &'static str, name: &str, args: Vec<String>) -> Nix {
    let mut s: Attrs = Vec::new();
    set(
        &mut s,
        &["description"],
        Nix::str(esc::text(&format!("windlass {kind} {name}"))),
    );
    set(&mut s, &["wantedBy"], Nix::strs(["multi-user.target"]));
    set(
        &mut s,
        &["path"],
        Nix::List(vec![Nix::Code("config.virtualisation.podman.package")]),
    );
    set(&mut s, &["serviceConfig", "Type"], Nix::str("oneshot"));
    set(
        &mut s,
        &["serviceConfig", "RemainAfterExit"],
        Nix::Bool(true),
    );
    let script = match kind {
        "network" => "createNetwork",
        _ => "createVolume",
    };
    set(
        &mut s,
        &["script"],
        Nix::Apply(
            Box::new(Nix::Code(script)),
            vec![Nix::str(name), Nix::strs(args)],
        ),
    );
    Nix::Attrs(s)
}

/// `/etc/windlass/generation.json` as the argument of `builtins.toJSON`:
/// the contract's document, rendered from its type so that the template
/// names none of its keys, with the apps being the contracts the enabled
/// apps' modules add to `windlass.generation`.
fn system_generation(backend: NixosBackend) -> Nix {
    let doc = SystemGeneration::new(Platform::Nixos, Some(backend), Vec::new());
    let Nix::Attrs(mut attrs) =
        from_json(serde_json::to_value(doc).expect("contract types serialize"))
    else {
        unreachable!("a struct serializes to an object")
    };
    for (path, value) in &mut attrs {
        if path.as_slice() == ["apps"] {
            *value = Nix::Code("lib.attrValues config.windlass.generation");
        }
    }
    Nix::Attrs(attrs)
}

fn fleet_module(
    fleet: &Fleet,
    backend: NixosBackend,
    quadlet: &BTreeMap<&str, &str>,
    ctx: &EmitContext<'_>,
) -> Result<OutputFile, EmitError> {
    let file = "nixos/fleet.nix".to_string();
    let mut windlass: Attrs = Vec::new();
    let mut services: Attrs = Vec::new();
    match backend {
        NixosBackend::Quadlet => {
            for (suffix, names) in [
                ("volume", fleet.volumes.keys().collect::<Vec<_>>()),
                ("network", fleet.networks.keys().collect::<Vec<_>>()),
            ] {
                for name in names {
                    let key = format!("quadlet/{name}.{suffix}");
                    let text = quadlet
                        .get(key.as_str())
                        .ok_or_else(|| EmitError::Invalid {
                            file: file.clone(),
                            message: format!("no Quadlet unit {key} to embed"),
                        })?;
                    set(
                        &mut windlass,
                        &["quadletUnits", &format!("{name}.{suffix}")],
                        quadlet_unit(&format!("{name}-{suffix}.service"), text),
                    );
                }
            }
        }
        NixosBackend::OciContainers => {
            for (name, net) in &fleet.networks {
                set(
                    &mut services,
                    &[&format!("windlass-network-{name}")],
                    create_service("network", name, network_args(name, net)),
                );
            }
            for (name, vol) in &fleet.volumes {
                set(
                    &mut services,
                    &[&format!("windlass-volume-{name}")],
                    create_service("volume", name, volume_args(name, vol)),
                );
            }
        }
    }
    let backend_name = nix::string(backend.name());
    let generation = system_generation(backend).render_at(3);
    let podman = ctx.podman.to_string();
    let windlass = Nix::Attrs(windlass).render_at(2);
    let services = Nix::Attrs(services).render_at(2);
    let vars = [
        // Still offered to templates given with --templates.
        ("backend", Var::Text(&backend_name)),
        ("generation", Var::Text(&generation)),
        ("quadlet", Var::Flag(backend == NixosBackend::Quadlet)),
        ("podman", Var::Text(&podman)),
        ("windlass", Var::Text(&windlass)),
        ("services", Var::Text(&services)),
    ];
    render_file(ctx, "nixos/fleet.nix.j2", file, &vars)
}

/// [`render`], as the file at `path`.
fn render_file(
    ctx: &EmitContext<'_>,
    template: &str,
    path: String,
    vars: &[(&str, Var<'_>)],
) -> Result<OutputFile, EmitError> {
    let content = render(ctx, template, &path, vars)?;
    Ok(OutputFile::new(path, content))
}

/// `template` rendered and checked; `path` names the file in an error.
fn render(
    ctx: &EmitContext<'_>,
    template: &str,
    path: &str,
    vars: &[(&str, Var<'_>)],
) -> Result<String, EmitError> {
    let content = ctx.templates.render_vars(template, vars)?;
    let exhaustive = ctx.templates.overridden.iter().any(|t| t == template);
    nix::check_emitted(&content, exhaustive).map_err(|message| EmitError::Invalid {
        file: path.to_string(),
        message: format!("not valid Nix: {message} (rendered from template {template})"),
    })?;
    Ok(content)
}
