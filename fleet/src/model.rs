//! The fleet's shared vocabulary: identifiers, the epoch, and the serde
//! types of everything written to the buckets (orders, heartbeats,
//! results, control, lease) and of fleetd's own state. Pure, no I/O.
//!
//! Every time in these types is unix **milliseconds** (the design's
//! examples show seconds; one unit everywhere keeps soak and deadline
//! arithmetic free of conversions). Enums serialize kebab-case, the
//! strings the CLI prints.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use windlass_contract::GenerationId;

/// A host id (checked by [`check_id`] where it enters: spec, heartbeat).
pub type HostId = String;
/// A rollout id (checked by [`check_id`]).
pub type RolloutId = String;
/// An order id, `<rollout>/<seq>`; also the request id given to windlassd.
pub type OrderId = String;
/// The agent's operation id (`windlass_agent::record::OpId`), its kind
/// (`switch`, `sweep`, …) and outcome (`committed`, `rolled-back`, …)
/// travel as the agent's strings: the pure half of this crate does not
/// link the agent (whose tree brings an HTTP and TLS stack); fleetd,
/// which does, converts at its edge.
pub type OpId = String;
/// See [`OpId`].
pub type OpKind = String;

/// The id of the order `seq` of `rollout`.
pub fn order_id(rollout: &str, seq: u64) -> OrderId {
    format!("{rollout}/{seq}")
}

/// Defines a unit enum with its serialized names, `ALL`, `as_str`,
/// `Display` and `FromStr` (whose error lists what was expected).
macro_rules! names {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ::serde::Serialize, ::serde::Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $s)] $v),+
        }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }
        }
        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl ::std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<$name, String> {
                $name::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    let all: Vec<String> = $name::ALL.iter().map(|v| format!("{:?}", v.as_str())).collect();
                    format!("expected one of {}, found {s:?}", all.join(", "))
                })
            }
        }
    };
}
pub(crate) use names;

/// Which coordinator's term an order or a rollout-state write belongs to.
/// `rev` is the lease bucket revision with which `create` won the lease
/// (revisions are stream sequences, so a later winner has a larger one);
/// `era` is the lease stream's creation time in ns, so epochs keep
/// growing when an operator deletes and re-creates the buckets.
/// Compared as (era, rev).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Epoch {
    pub era: u64,
    pub rev: u64,
}

impl std::fmt::Display for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.era, self.rev)
    }
}

/// A host or rollout id: `^[a-z0-9][a-z0-9-]{0,62}$`. No dots, since it
/// is one token of a key; the error says what was expected.
pub fn check_id(what: &str, s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {s:?}: expected 1 to 63 of a-z, 0-9 and '-', starting with a letter or digit"
        ))
    }
}

/// A generation on one host: its per-host number and its fleet-wide
/// identity (native: `sha256:` of `windlass-generation.json`; NixOS and
/// Guix: the system profile generation's store path).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationRef {
    pub generation: GenerationId,
    pub digest: String,
}

/// A native generator tree, packed as tar.zst in the artifact store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NativeTarget {
    /// `sha256:<hex>` of the tree's `windlass-generation.json`.
    pub digest: String,
    /// The object name, `sha256-<artifact_sha256>`.
    pub artifact: String,
    pub artifact_sha256: String,
    pub size: u64,
}

/// The generation a switch goes to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    Native(NativeTarget),
    /// NixOS or Guix: a system closure already copied to the host.
    System {
        path: String,
    },
}

impl Target {
    /// The fleet-wide identity a heartbeat's `running.digest` is compared with.
    pub fn digest(&self) -> &str {
        match self {
            Target::Native(n) => &n.digest,
            Target::System { path } => path,
        }
    }
}

/// What an order asks a host to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// `Switch` with `confirm=manual` (observed) or `auto` (local);
    /// `deadline_sec` is the agent's confirm/health wait.
    Switch {
        target: Target,
        deadline_sec: u64,
        confirm: ConfirmMode,
    },
    /// `Confirm` the operation started by order `of`.
    Confirm { of: OrderId },
    /// Go back to `to`: `Cancel` the operation of `of` while it is in
    /// flight, else `Rollback(to)`.
    Rollback { of: OrderId, to: GenerationRef },
    /// Cancel the operation of `of` if it runs; if it never started, it
    /// never will (the order key now holds this order).
    Cancel { of: OrderId },
    Sweep {
        app: String,
        release: String,
        deadline_sec: u64,
        confirm: ConfirmMode,
    },
    Cutover {
        target: String,
        version: String,
        url: String,
        sha256: String,
        deadline_sec: u64,
    },
}

names! {
    /// The kind of an [`Action`], as the CLI prints it.
    ActionKind {
        Switch = "switch",
        Confirm = "confirm",
        Rollback = "rollback",
        Cancel = "cancel",
        Sweep = "sweep",
        Cutover = "cutover",
    }
}

impl Action {
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Switch { .. } => ActionKind::Switch,
            Action::Confirm { .. } => ActionKind::Confirm,
            Action::Rollback { .. } => ActionKind::Rollback,
            Action::Cancel { .. } => ActionKind::Cancel,
            Action::Sweep { .. } => ActionKind::Sweep,
            Action::Cutover { .. } => ActionKind::Cutover,
        }
    }
}

names! {
    /// Who confirms a switch: the coordinator after observing the host
    /// (`observed`, the default: manual on the host), or the agent's own
    /// health gate (`local`).
    ConfirmMode {
        Observed = "observed",
        Local = "local",
    }
}

names! {
    /// What a red wave does to the rollout.
    OnFail {
        Pause = "pause",
        Rollback = "rollback",
    }
}

/// A host's current order (`windlass-orders/<host>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub host: HostId,
    pub rollout: RolloutId,
    pub wave: usize,
    pub seq: u64,
    pub epoch: Epoch,
    pub issued_at: u64,
    pub deadline_at: u64,
    pub action: Action,
}

names! {
    /// What a host reports for one step of an order.
    ResultOutcome {
        Started = "started",
        AwaitingConfirm = "awaiting-confirm",
        Committed = "committed",
        RolledBack = "rolled-back",
        Failed = "failed",
        Canceled = "canceled",
        Skipped = "skipped",
        Refused = "refused",
        IgnoredStale = "ignored-stale",
    }
}

impl ResultOutcome {
    /// Whether the order is over (no later step follows).
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            ResultOutcome::Started | ResultOutcome::AwaitingConfirm
        )
    }
}

/// One step of an order on a host (`windlass-results/<host>.<rollout>.<seq>.<step>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostResult {
    pub order: OrderId,
    pub host: HostId,
    pub rollout: RolloutId,
    pub seq: u64,
    pub epoch: Epoch,
    /// None when no operation was started (refused, ignored-stale).
    #[serde(default)]
    pub operation: Option<OpId>,
    #[serde(default)]
    pub kind: Option<OpKind>,
    pub outcome: ResultOutcome,
    #[serde(default)]
    pub from: Option<GenerationRef>,
    #[serde(default)]
    pub to: Option<GenerationRef>,
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub journal: Vec<String>,
    pub at: u64,
}

names! {
    /// What an operator writes to `<rollout>.control`.
    ControlCommand {
        Pause = "pause",
        Resume = "resume",
        Abort = "abort",
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Control {
    pub command: ControlCommand,
    pub by: String,
    pub at: u64,
}

names! {
    /// Whether the agent has an operation in its slot.
    HostActivity {
        Idle = "idle",
        Busy = "busy",
    }
}

/// The operation in the agent's slot, as a heartbeat shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentOperation {
    pub id: OpId,
    pub kind: OpKind,
    /// The agent's phase name of that kind (`waiting-confirm`, …).
    pub phase: String,
    #[serde(default)]
    pub request: Option<String>,
    #[serde(default)]
    pub to: Option<GenerationRef>,
}

/// The newest finished operation, as a heartbeat shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastOperation {
    pub id: OpId,
    pub kind: OpKind,
    /// The agent's outcome: `committed`, `rolled-back`, `failed`, `canceled`, `skipped`.
    pub result: String,
    #[serde(default)]
    pub request: Option<String>,
    pub finished_at: u64,
}

/// Drift in a heartbeat: how much and of which kinds, never paths.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftSummary {
    pub count: u32,
    pub kinds: Vec<String>,
}

/// An app of the running generation, in a heartbeat.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppReport {
    /// The image reference the app runs (`host/path:tag`).
    pub image: String,
    /// Its `release.track`: `semver` or `none`; `""` when windlassd does
    /// not say (older than the fleet's release discovery).
    #[serde(default)]
    pub track: String,
    #[serde(default)]
    pub allow_prerelease: bool,
    #[serde(default)]
    pub constraint: Option<String>,
}

/// What fleetd has seen of orders.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrdersSeen {
    pub last_seq: u64,
    #[serde(default)]
    pub max_epoch: Option<Epoch>,
}

/// `windlass-hosts/<host>`: put by the host's fleetd every interval and
/// on changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub host: HostId,
    /// Counts up from fleetd's start.
    pub n: u64,
    pub sent_at: u64,
    pub fleetd: String,
    pub agent: String,
    pub platform: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub selected: Option<GenerationRef>,
    #[serde(default)]
    pub running: Option<GenerationRef>,
    pub state: HostActivity,
    #[serde(default)]
    pub operation: Option<CurrentOperation>,
    #[serde(default)]
    pub last: Option<LastOperation>,
    /// app → canonical release (the one the host's sweeps promoted).
    #[serde(default)]
    pub releases: BTreeMap<String, String>,
    /// app → its image and release policy, as the running generation
    /// declares them (what a fleet sweep without a release discovers
    /// from).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub apps: BTreeMap<String, AppReport>,
    #[serde(default)]
    pub drift: DriftSummary,
    #[serde(default)]
    pub orders: OrdersSeen,
    #[serde(default)]
    pub outbox: u32,
}

/// fleetd's persisted state (`/var/lib/windlass-fleet/state.json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostState {
    /// The lease stream's `created` (ns) fleetd last checked.
    pub era_seen: u64,
    pub max_epoch: Option<Epoch>,
    pub last_seq: u64,
    pub in_progress: Option<Order>,
    /// The agent's operation for each order it started.
    pub ops: BTreeMap<OrderId, OpId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(v: &T) {
        let json = serde_json::to_string(v).unwrap();
        let back: T = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, v, "{json}");
    }

    /// Every name of every enum: serde, Display and FromStr agree.
    macro_rules! names_round_trip {
        ($($t:ty),+) => {$(
            for v in <$t>::ALL {
                let json = serde_json::to_string(v).unwrap();
                assert_eq!(json, format!("\"{}\"", v.as_str()));
                assert_eq!(serde_json::from_str::<$t>(&json).unwrap(), *v);
                assert_eq!(v.to_string().parse::<$t>().unwrap(), *v);
                let kebab = v.as_str().bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
                assert!(kebab, "{}", v.as_str());
            }
            let e = "nope".parse::<$t>().unwrap_err();
            assert!(e.starts_with("expected one of"), "{e}");
        )+};
    }

    #[test]
    fn every_phase_round_trips() {
        names_round_trip!(
            ActionKind,
            ConfirmMode,
            OnFail,
            ResultOutcome,
            ControlCommand,
            HostActivity
        );
    }

    pub(crate) fn gen_ref(n: u64, digest: &str) -> GenerationRef {
        GenerationRef {
            generation: GenerationId(n),
            digest: digest.to_string(),
        }
    }

    fn native() -> Target {
        Target::Native(NativeTarget {
            digest: "sha256:9f".into(),
            artifact: "sha256-4c".into(),
            artifact_sha256: "4c".into(),
            size: 81234,
        })
    }

    #[test]
    fn order_json_has_the_designed_shape() {
        let o = Order {
            id: order_id("web-142", 12),
            host: "kiosk-01".into(),
            rollout: "web-142".into(),
            wave: 0,
            seq: 12,
            epoch: Epoch { era: 7, rev: 812 },
            issued_at: 1,
            deadline_at: 2,
            action: Action::Switch {
                target: native(),
                deadline_sec: 120,
                confirm: ConfirmMode::Observed,
            },
        };
        let v = serde_json::to_value(&o).unwrap();
        assert_eq!(v["id"], "web-142/12");
        assert_eq!(
            v["action"]["switch"]["target"]["native"]["digest"],
            "sha256:9f"
        );
        assert_eq!(v["action"]["switch"]["confirm"], "observed");
        round_trip(&o);
    }

    #[test]
    fn every_action_round_trips() {
        let actions = [
            Action::Switch {
                target: native(),
                deadline_sec: 120,
                confirm: ConfirmMode::Local,
            },
            Action::Switch {
                target: Target::System {
                    path: "/nix/store/abc-nixos-system".into(),
                },
                deadline_sec: 60,
                confirm: ConfirmMode::Observed,
            },
            Action::Confirm {
                of: "web-142/12".into(),
            },
            Action::Rollback {
                of: "web-142/12".into(),
                to: gen_ref(6, "sha256:11"),
            },
            Action::Cancel {
                of: "web-142/12".into(),
            },
            Action::Sweep {
                app: "web".into(),
                release: "1.4.2".into(),
                deadline_sec: 120,
                confirm: ConfirmMode::Observed,
            },
            Action::Cutover {
                target: "agent".into(),
                version: "0.2.1".into(),
                url: "https://example.org/a".into(),
                sha256: "ab".into(),
                deadline_sec: 60,
            },
        ];
        let mut kinds: Vec<ActionKind> = actions.iter().map(Action::kind).collect();
        kinds.dedup();
        assert_eq!(kinds, ActionKind::ALL);
        for a in &actions {
            let v = serde_json::to_value(a).unwrap();
            assert!(v.get(a.kind().as_str()).is_some(), "{v}");
            round_trip(a);
        }
    }

    #[test]
    fn results_round_trip_with_every_outcome() {
        for outcome in ResultOutcome::ALL {
            let r = HostResult {
                order: "web-142/12".into(),
                host: "kiosk-01".into(),
                rollout: "web-142".into(),
                seq: 12,
                epoch: Epoch { era: 1, rev: 2 },
                operation: Some("001750412346x000".into()),
                kind: Some("switch".into()),
                outcome: *outcome,
                from: Some(gen_ref(6, "sha256:11")),
                to: Some(gen_ref(7, "sha256:9f")),
                error: String::new(),
                journal: vec!["line".into()],
                at: 1_750_412_371_000,
            };
            round_trip(&r);
        }
        // A refused order has no operation.
        let r: HostResult = serde_json::from_str(
            r#"{"order":"w/1","host":"h","rollout":"w","seq":1,"epoch":{"era":1,"rev":1},
                "outcome":"refused","error":"stale epoch","at":5}"#,
        )
        .unwrap();
        assert_eq!(r.operation, None);
        assert!(r.outcome.is_final() && !ResultOutcome::Started.is_final());
    }

    #[test]
    fn heartbeat_parses_the_designed_example() {
        let hb: Heartbeat = serde_json::from_str(
            r#"{"host": "kiosk-01", "n": 1042, "sent_at": 1750412345000, "fleetd": "0.2.0", "agent": "0.2.0", "platform": "native",
 "labels": {"site": "north"}, "selected": {"generation": "7", "digest": "sha256:9f"},
 "running": {"generation": "7", "digest": "sha256:9f"}, "state": "busy",
 "operation": {"id": "001750412346x000", "kind": "switch", "phase": "waiting-confirm", "request": "web-142/12",
               "to": {"generation": "7", "digest": "sha256:9f"}},
 "last": {"id": "001750400000x000", "kind": "sweep", "result": "skipped", "request": null, "finished_at": 1750400003000},
 "releases": {"web": "1.4.2", "db": "16.3"}, "drift": {"count": 1, "kinds": ["drop-in-added"]},
 "apps": {"web": {"image": "reg.example/web:1.4.2", "track": "semver", "allow_prerelease": false, "constraint": "^1"}},
 "orders": {"last_seq": 12, "max_epoch": {"era": 1, "rev": 812}}, "outbox": 0}"#,
        )
        .unwrap();
        assert_eq!(hb.running, Some(gen_ref(7, "sha256:9f")));
        assert_eq!(hb.apps["web"].constraint.as_deref(), Some("^1"));
        assert_eq!(hb.operation.as_ref().unwrap().phase, "waiting-confirm");
        assert_eq!(hb.last.as_ref().unwrap().result, "skipped");
        round_trip(&hb);
        // A fresh host: nothing running yet, no operation.
        let idle: Heartbeat = serde_json::from_str(
            r#"{"host":"h","n":0,"sent_at":0,"fleetd":"0.2.0","agent":"0.2.0","platform":"nixos","state":"idle"}"#,
        )
        .unwrap();
        assert_eq!(idle.state, HostActivity::Idle);
        assert!(idle.apps.is_empty());
        round_trip(&idle);
    }

    #[test]
    fn control_lease_and_host_state_round_trip() {
        for command in ControlCommand::ALL {
            round_trip(&Control {
                command: *command,
                by: "alice@ops1".into(),
                at: 3,
            });
        }
        let mut st = HostState {
            era_seen: 9,
            max_epoch: Some(Epoch { era: 9, rev: 812 }),
            last_seq: 11,
            ..HostState::default()
        };
        st.ops
            .insert("web-142/11".into(), "001750412346x000".into());
        round_trip(&st);
        round_trip(&HostState::default());
    }

    #[test]
    fn epochs_order_by_era_then_revision() {
        let a = Epoch { era: 1, rev: 900 };
        let b = Epoch { era: 2, rev: 3 };
        let c = Epoch { era: 2, rev: 4 };
        assert!(a < b && b < c);
        assert_eq!(c.to_string(), "2/4");
    }

    #[test]
    fn ids_are_single_key_tokens() {
        for ok in ["kiosk-01", "a", "0web", &"x".repeat(63)] {
            assert!(check_id("host", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "A",
            "a.b",
            "a_b",
            "a b",
            "a>",
            "a*",
            &"x".repeat(64),
        ] {
            let e = check_id("host", bad).unwrap_err();
            assert!(e.contains("expected"), "{e}");
        }
    }
}
