//! The manifest's shape, written once: the walker checks types and unknown
//! keys against it, and `windlass schema` prints it as JSON Schema, so the
//! two can never disagree. Value rules beyond type (ports, sizes, names)
//! live in `model`.

use serde_json::{Map, Value, json};

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    String,
    Bool,
    Integer,
    Float,
    StringArray,
    /// A table of string → string (`env`, `labels`).
    StringMap,
    /// A fixed table.
    Table(&'static [Field]),
    /// An array of tables with fixed fields (`[[jobs]]`, `secrets`).
    TableArray(&'static [Field]),
    /// A table whose keys are user names, each a fixed table (`[networks.x]`).
    NamedTables(&'static [Field]),
    /// A table whose keys are user names, each an integer or a fixed
    /// table (`ulimits = { nproc = 512, nofile = { soft = 1024, hard = 4096 } }`).
    IntOrTables(&'static [Field]),
    /// An array whose elements are each a string or a table with fixed
    /// fields (`container.networks`: `"back"` or `{ name = "back", … }`).
    StringOrTableArray(&'static [Field]),
}

#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    /// Allowed values of a string field; empty means any.
    pub one_of: &'static [&'static str],
    pub doc: &'static str,
}

const fn f(name: &'static str, kind: Kind, doc: &'static str) -> Field {
    Field {
        name,
        kind,
        required: false,
        one_of: &[],
        doc,
    }
}

const fn req(name: &'static str, kind: Kind, doc: &'static str) -> Field {
    Field {
        name,
        kind,
        required: true,
        one_of: &[],
        doc,
    }
}

const fn one_of(name: &'static str, values: &'static [&'static str], doc: &'static str) -> Field {
    Field {
        name,
        kind: Kind::String,
        required: false,
        one_of: values,
        doc,
    }
}

use Kind::*;

pub const SECRET: &[Field] = &[
    req(
        "name",
        String,
        "Name of a podman secret, or an absolute path to a file holding it",
    ),
    f(
        "target",
        String,
        "Absolute path in the container, or an environment variable name",
    ),
    f(
        "mode",
        String,
        "Octal file mode of the mounted secret, e.g. \"0400\"",
    ),
];

pub const ULIMIT: &[Field] = &[
    req("soft", Integer, "Soft limit, -1 for unlimited"),
    req("hard", Integer, "Hard limit, -1 for unlimited"),
];

pub const NETWORK_ATTACHMENT: &[Field] = &[
    req(
        "name",
        String,
        "A network declared in windlass.toml (not \"host\")",
    ),
    f(
        "aliases",
        StringArray,
        "DNS names other containers on this network reach the container by",
    ),
    f(
        "ipv4",
        String,
        "Static IPv4 address, inside the network's declared subnet",
    ),
    f(
        "ipv6",
        String,
        "Static IPv6 address, inside the network's declared subnet",
    ),
];

pub const CONTAINER: &[Field] = &[
    req(
        "image",
        String,
        "registry/path:tag or registry/path@sha256:<64 hex>",
    ),
    f("command", StringArray, "Command (exec form)"),
    f("entrypoint", StringArray, "Entrypoint (exec form)"),
    f("user", String, "uid[:gid] or a user name"),
    f("ports", StringArray, "[ip:]host:container[/tcp|/udp]"),
    f(
        "volumes",
        StringArray,
        "named:/path[:opts] or /abs/host:/path[:opts]; opts: ro or rw, z or Z, comma-separated",
    ),
    f("env", StringMap, "Environment variables"),
    f(
        "env_files",
        StringArray,
        "Absolute paths of environment files read at run time",
    ),
    f(
        "secrets",
        TableArray(SECRET),
        "References to secrets; never values",
    ),
    f(
        "networks",
        StringOrTableArray(NETWORK_ATTACHMENT),
        "Networks declared in windlass.toml, or \"host\"; a table { name, aliases, ipv4, ipv6 } to set the container's names and addresses on one",
    ),
    f(
        "memory",
        String,
        "Memory limit: integer with optional K M G T, Ki Mi Gi Ti or B",
    ),
    f("cpus", Float, "CPU limit, > 0"),
    f("add_hosts", StringArray, "host:ip entries for /etc/hosts"),
    f("labels", StringMap, "Container labels"),
    f("read_only", Bool, "Read-only root filesystem"),
    one_of("restart", &["always", "on-failure", "no"], "Restart policy"),
    f("stop_timeout", String, "systemd time span"),
    one_of(
        "auto_update",
        &["registry", "local", "none"],
        "Podman auto-update policy",
    ),
    f(
        "shm_size",
        String,
        "Size of /dev/shm: integer with optional K M G T, Ki Mi Gi Ti or B",
    ),
    f(
        "security_opt",
        StringArray,
        "Podman security options: no-new-privileges, label=…, seccomp=…, apparmor=…, mask=…, unmask=…",
    ),
    f(
        "ulimits",
        IntOrTables(ULIMIT),
        "Resource limits: name → limit, or name → { soft, hard }; -1 is unlimited",
    ),
    f(
        "cap_add",
        StringArray,
        "Capabilities to add, e.g. NET_ADMIN (or ALL)",
    ),
    f(
        "cap_drop",
        StringArray,
        "Capabilities to drop, e.g. MKNOD (or ALL)",
    ),
    f("tmpfs", StringArray, "tmpfs mounts: /path[:options]"),
    f(
        "sysctls",
        StringMap,
        "Namespaced sysctls (kernel.…, fs.mqueue.…, net.…)",
    ),
    f("dns", StringArray, "DNS server IP addresses"),
    f("hostname", String, "The container's host name"),
    f("privileged", Bool, "Run with extended privileges"),
    f(
        "devices",
        StringArray,
        "Host devices: /dev/host[:/dev/container][:rwm]",
    ),
    f(
        "init",
        Bool,
        "Run an init process that reaps zombies and forwards signals",
    ),
    f(
        "stop_signal",
        String,
        "Signal that stops the container, e.g. SIGINT",
    ),
    f(
        "pids_limit",
        Integer,
        "Maximum number of processes, -1 for unlimited",
    ),
    f(
        "container_name",
        String,
        "The container's name (and DNS name) instead of the app's name",
    ),
];

pub const HEALTH: &[Field] = &[
    f("cmd", StringArray, "Health command (exec form)"),
    f("interval", String, "systemd time span"),
    f("timeout", String, "systemd time span"),
    f("start_period", String, "systemd time span"),
    f("retries", Integer, "Integer >= 1"),
    f(
        "http",
        String,
        "http(s) URL on loopback probed by the agent after a switch",
    ),
];

pub const DEPENDS: &[Field] = &[
    f("requires", StringArray, "Apps this app requires"),
    f("wants", StringArray, "Apps this app wants"),
];

pub const UPDATE: &[Field] = &[
    one_of("order", &["stop-first", "start-first"], "Update order"),
    f("health_deadline", String, "systemd time span, default 2m"),
    one_of("rollback", &["auto", "manual"], "Rollback mode"),
    one_of(
        "on_remove",
        &["keep-data", "purge-data"],
        "What becomes of the app's own named volumes once a switch that removes the app commits; default keep-data",
    ),
    one_of(
        "drift",
        &["report", "restore"],
        "What windlassd does when what the app owns drifts from the generation; default [host] drift, else report",
    ),
    f(
        "drift_ignore",
        StringArray,
        "Drift not reported nor restored: GLOB or KIND:GLOB (modified, removed, drop-in-added, masked, not-loaded, image), matched against the finding's absolute path, else its unit; added to [host] drift_ignore",
    ),
];

pub const RELEASE: &[Field] = &[
    one_of(
        "track",
        &["semver", "none"],
        "Which image tags count as releases",
    ),
    f("allow_prerelease", Bool, "Whether prereleases count"),
    f("constraint", String, "semver requirement, e.g. \"^0.18\""),
];

pub const JOB: &[Field] = &[
    req("name", String, "^[a-z][a-z0-9-]{0,62}$"),
    req(
        "schedule",
        String,
        "systemd calendar expression (OnCalendar=)",
    ),
    f("persistent", Bool, "Catch up missed runs, default true"),
    f("randomized_delay", String, "systemd time span"),
    f("timeout", String, "systemd time span"),
    req("command", StringArray, "Command (exec form)"),
];

pub const HOOK: &[Field] = &[
    req("command", StringArray, "Command (exec form)"),
    f(
        "entrypoint",
        StringArray,
        "Entrypoint (exec form); default the container's",
    ),
    f(
        "image",
        String,
        "registry/path:tag or registry/path@sha256:<64 hex>; default container.image",
    ),
    f(
        "timeout",
        String,
        "systemd time span for all attempts together, default 5m",
    ),
    f(
        "retries",
        Integer,
        "Further attempts after a failed one, >= 0, default 0",
    ),
];

/// One table per `HookKind`, keyed by `HookKind::key()`.
pub const HOOKS: &[Field] = &[
    f(
        "pre_activate",
        Table(HOOK),
        "Runs before the generation's units start; a failure rolls the switch back",
    ),
    f(
        "pre_commit",
        Table(HOOK),
        "Runs once the changed apps are healthy, before the commit; a failure rolls the switch back",
    ),
    f(
        "post_commit",
        Table(HOOK),
        "Runs after the commit; a failure is reported only",
    ),
    f(
        "down",
        Table(HOOK),
        "Runs when a switch away from this generation is rolled back",
    ),
];

pub const APP: &[Field] = &[
    f(
        "name",
        String,
        "^[a-z][a-z0-9-]{0,62}$; defaults to the file stem",
    ),
    f("description", String, "One line of free text"),
    req("container", Table(CONTAINER), "The container"),
    f("health", Table(HEALTH), "Health check"),
    f("depends", Table(DEPENDS), "Dependencies on other apps"),
    f("update", Table(UPDATE), "How changes roll out"),
    f("release", Table(RELEASE), "Which tags sweeps consider"),
    f("jobs", TableArray(JOB), "Scheduled jobs"),
    f(
        "hooks",
        Table(HOOKS),
        "Lifecycle hooks: one-shot containers run by windlassd during a switch",
    ),
];

pub const HOST: &[Field] = &[
    f(
        "podman",
        String,
        "Podman version the Quadlet output must be valid for, e.g. \"5.4\"",
    ),
    one_of(
        "drift",
        &["report", "restore"],
        "The fleet's default for update.drift; default report",
    ),
    f(
        "drift_ignore",
        StringArray,
        "Drift ignored in every app (each app's update.drift_ignore adds to it): GLOB or KIND:GLOB",
    ),
];

pub const NETWORK: &[Field] = &[
    f("subnet", String, "CIDR, e.g. 10.89.0.0/24"),
    f("gateway", String, "IP address"),
    f("internal", Bool, "No external connectivity"),
    f("ipv6", Bool, "Enable IPv6"),
    f("driver", String, "Network driver, e.g. bridge"),
    f("labels", StringMap, "Network labels"),
];

pub const VOLUME: &[Field] = &[
    f("driver", String, "Volume driver"),
    f("labels", StringMap, "Volume labels"),
];

pub const FLEET: &[Field] = &[
    f("host", Table(HOST), "The target host"),
    f("networks", NamedTables(NETWORK), "Networks apps may join"),
    f("volumes", NamedTables(VOLUME), "Named volumes"),
];

fn kind_schema(kind: Kind, field: &Field) -> Value {
    match kind {
        String if !field.one_of.is_empty() => json!({"type": "string", "enum": field.one_of}),
        String => json!({"type": "string"}),
        Bool => json!({"type": "boolean"}),
        Integer => json!({"type": "integer"}),
        Float => json!({"type": "number"}),
        StringArray => json!({"type": "array", "items": {"type": "string"}}),
        StringMap => json!({"type": "object", "additionalProperties": {"type": "string"}}),
        Table(fields) => table_schema(fields),
        TableArray(fields) => json!({"type": "array", "items": table_schema(fields)}),
        NamedTables(fields) => {
            json!({"type": "object", "additionalProperties": table_schema(fields)})
        }
        IntOrTables(fields) => json!({
            "type": "object",
            "additionalProperties": {"oneOf": [{"type": "integer"}, table_schema(fields)]}
        }),
        StringOrTableArray(fields) => json!({
            "type": "array",
            "items": {"oneOf": [{"type": "string"}, table_schema(fields)]}
        }),
    }
}

fn table_schema(fields: &[Field]) -> Value {
    let mut props = Map::new();
    for field in fields {
        let mut s = kind_schema(field.kind, field);
        s["description"] = json!(field.doc);
        props.insert(field.name.to_string(), s);
    }
    let required: Vec<&str> = fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    let mut t = json!({"type": "object", "additionalProperties": false, "properties": props});
    if !required.is_empty() {
        t["required"] = json!(required);
    }
    t
}

/// The JSON Schema of an app manifest, with `windlass.toml`'s under `$defs`.
pub fn json_schema() -> Value {
    let mut s = table_schema(APP);
    s["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    s["title"] = json!("windlass app manifest");
    s["$defs"] = json!({"fleet": table_schema(FLEET)});
    s
}
