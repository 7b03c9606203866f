//! The fleet's JetStream key-value buckets, their configs and their keys
//! (docs/design/fleet.md §2).
//!
//! | bucket | keys | history | max_age |
//! |---|---|---|---|
//! | `windlass-lease` | `coordinator` | 1 | the lease TTL (default 10 s) |
//! | `windlass-hosts` | `<host>` (heartbeat) | 1 | 10 min |
//! | `windlass-rollouts` | `<rollout>.spec`, `<rollout>.state`, `<rollout>.control`, `canonical.<app>` | 16 | none |
//! | `windlass-orders` | `<host>` (the host's current order) | 8 | none |
//! | `windlass-results` | `<host>.<rollout>.<seq>.<step>`, `<host>.local.<op-id>` | 1 | 30 days |
//!
//! All use file storage. [`init`] creates the missing ones and checks that
//! existing ones have exactly these limits, refusing (with what differs)
//! otherwise: a coordinator must not run against a lease bucket whose
//! `max_age` is not its TTL. The artifact object store is not made here
//! yet.
//!
//! Key builders take ids checked by [`model::check_id`] (one key token: no
//! dots, no wildcards), so a key always parses back to what built it.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream::StorageType};

use crate::kv::{KvError, stream_error};
use crate::model::check_id;

pub const LEASE: &str = "windlass-lease";
pub const HOSTS: &str = "windlass-hosts";
pub const ROLLOUTS: &str = "windlass-rollouts";
pub const ORDERS: &str = "windlass-orders";
pub const RESULTS: &str = "windlass-results";

/// The lease bucket's only key.
pub const LEASE_KEY: &str = "coordinator";

pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);
pub const HOSTS_MAX_AGE: Duration = Duration::from_secs(10 * 60);
pub const RESULTS_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

/// What `init` needs to know of the deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `max_age` of the lease bucket: how long a lease lives unrenewed.
    pub lease_ttl: Duration,
    /// Replicas of every bucket (1 on a single server).
    pub replicas: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            lease_ttl: DEFAULT_LEASE_TTL,
            replicas: 1,
        }
    }
}

/// The key-value configs of the five buckets, in the table's order.
pub fn configs(cfg: &Config) -> Vec<kv::Config> {
    let b = |bucket: &str, description: &str, history: i64, max_age: Duration| kv::Config {
        bucket: bucket.to_string(),
        description: description.to_string(),
        history,
        max_age,
        storage: StorageType::File,
        num_replicas: cfg.replicas.max(1),
        ..Default::default()
    };
    vec![
        b(LEASE, "windlass coordinator lease", 1, cfg.lease_ttl),
        b(HOSTS, "windlass host heartbeats", 1, HOSTS_MAX_AGE),
        b(
            ROLLOUTS,
            "windlass rollout specs, states, controls",
            16,
            Duration::ZERO,
        ),
        b(
            ORDERS,
            "windlass orders, one key per host",
            8,
            Duration::ZERO,
        ),
        b(RESULTS, "windlass order results", 1, RESULTS_MAX_AGE),
    ]
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(
        "bucket {bucket} exists with another configuration ({differences}); \
         windlass will not use it: remove the bucket or fix the configuration"
    )]
    Mismatch { bucket: String, differences: String },
    #[error("bucket {bucket}: cannot create it: {source}")]
    Create {
        bucket: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Kv(#[from] KvError),
}

/// Creates the buckets that are missing and verifies the others against
/// [`configs`]. Creating needs the account's JetStream API (the admin's
/// credentials); verifying needs only `STREAM.INFO`.
pub async fn init(js: &jetstream::Context, cfg: &Config) -> Result<(), InitError> {
    for want in configs(cfg) {
        match existing(js, &want.bucket).await? {
            Some(have) => verify_one(&want, &have)?,
            None => {
                let bucket = want.bucket.clone();
                match js.create_key_value(want.clone()).await {
                    Ok(_) => {}
                    // Another `init` may have made it meanwhile.
                    Err(e) => match existing(js, &bucket).await? {
                        Some(have) => verify_one(&want, &have)?,
                        None => {
                            return Err(InitError::Create {
                                bucket,
                                source: Box::new(e),
                            });
                        }
                    },
                }
            }
        }
    }
    Ok(())
}

/// Verifies that all buckets exist with [`configs`], creating nothing
/// (what a coordinator does at start).
pub async fn verify(js: &jetstream::Context, cfg: &Config) -> Result<(), InitError> {
    for want in configs(cfg) {
        match existing(js, &want.bucket).await? {
            Some(have) => verify_one(&want, &have)?,
            None => {
                return Err(KvError::NotFound {
                    bucket: want.bucket,
                    key: String::new(),
                }
                .into());
            }
        }
    }
    Ok(())
}

async fn existing(
    js: &jetstream::Context,
    bucket: &str,
) -> Result<Option<jetstream::stream::Config>, KvError> {
    match js.get_stream(format!("KV_{bucket}")).await {
        Ok(s) => Ok(Some(s.cached_info().config.clone())),
        Err(e) => match stream_error(bucket, "stream info", e) {
            KvError::NotFound { .. } => Ok(None),
            e => Err(e),
        },
    }
}

/// What of `have` differs from `want`, as "field x, expected y" phrases.
fn differences(want: &kv::Config, have: &jetstream::stream::Config) -> Vec<String> {
    let mut d = Vec::new();
    let subject = format!("$KV.{}.>", want.bucket);
    if have.subjects != [subject.clone()] {
        d.push(format!(
            "subjects {:?}, expected [{subject:?}]",
            have.subjects
        ));
    }
    if have.max_messages_per_subject != want.history {
        d.push(format!(
            "history {}, expected {}",
            have.max_messages_per_subject, want.history
        ));
    }
    if have.max_age != want.max_age {
        d.push(format!(
            "max_age {:?}, expected {:?}",
            have.max_age, want.max_age
        ));
    }
    if have.storage != want.storage {
        d.push(format!(
            "storage {:?}, expected {:?}",
            have.storage, want.storage
        ));
    }
    if have.num_replicas.max(1) != want.num_replicas.max(1) {
        d.push(format!(
            "replicas {}, expected {}",
            have.num_replicas, want.num_replicas
        ));
    }
    d
}

fn verify_one(want: &kv::Config, have: &jetstream::stream::Config) -> Result<(), InitError> {
    let d = differences(want, have);
    if d.is_empty() {
        Ok(())
    } else {
        Err(InitError::Mismatch {
            bucket: want.bucket.clone(),
            differences: d.join("; "),
        })
    }
}

/// A key that cannot be built or parsed; the text says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

fn id(what: &str, s: &str) -> Result<(), KeyError> {
    check_id(what, s).map_err(KeyError)
}

/// `windlass-hosts` and `windlass-orders`: the host id itself.
pub fn host_key(host: &str) -> Result<String, KeyError> {
    id("host", host)?;
    Ok(host.to_string())
}

/// The host of a `windlass-hosts` or `windlass-orders` key.
pub fn parse_host_key(key: &str) -> Result<String, KeyError> {
    host_key(key)
}

/// A key of `windlass-rollouts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutKey {
    Spec(String),
    State(String),
    Control(String),
    /// `canonical.<app>`: the release a finished rollout made canonical.
    Canonical(String),
}

impl RolloutKey {
    /// The key text; fails when the id is not one key token.
    pub fn build(&self) -> Result<String, KeyError> {
        Ok(match self {
            RolloutKey::Spec(r) => {
                id("rollout", r)?;
                format!("{r}.spec")
            }
            RolloutKey::State(r) => {
                id("rollout", r)?;
                format!("{r}.state")
            }
            RolloutKey::Control(r) => {
                id("rollout", r)?;
                format!("{r}.control")
            }
            RolloutKey::Canonical(app) => {
                id("app", app)?;
                format!("canonical.{app}")
            }
        })
    }

    pub fn parse(key: &str) -> Result<Self, KeyError> {
        let bad = || {
            KeyError(format!(
                "{ROLLOUTS} key {key:?}: expected <rollout>.spec|state|control or canonical.<app>"
            ))
        };
        let (a, b) = key.split_once('.').ok_or_else(bad)?;
        let k = match (a, b) {
            ("canonical", app) => RolloutKey::Canonical(app.to_string()),
            (r, "spec") => RolloutKey::Spec(r.to_string()),
            (r, "state") => RolloutKey::State(r.to_string()),
            (r, "control") => RolloutKey::Control(r.to_string()),
            _ => return Err(bad()),
        };
        // The ids must be single tokens (this also rejects more dots).
        k.build()
            .map_err(|e| KeyError(format!("{ROLLOUTS} key {key:?}: {e}")))?;
        Ok(k)
    }
}

/// Which step of an order a result reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Started,
    Awaiting,
    Final,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Started => "started",
            Step::Awaiting => "awaiting",
            Step::Final => "final",
        }
    }
}

/// A key of `windlass-results`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultKey {
    /// `<host>.<rollout>.<seq>.<step>`
    Order {
        host: String,
        rollout: String,
        seq: u64,
        step: Step,
    },
    /// `<host>.local.<op-id>`: a host's own operation (manual switch,
    /// timer sweep) reported while no order asked for it.
    Local { host: String, operation: String },
}

/// An operation id (`<unix s>x<n>`): letters, digits and `_`.
fn op_id(s: &str) -> Result<(), KeyError> {
    if !s.is_empty() && s.len() <= 64 && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
        Ok(())
    } else {
        Err(KeyError(format!(
            "operation id {s:?}: expected 1 to 64 of letters, digits and '_'"
        )))
    }
}

impl ResultKey {
    pub fn build(&self) -> Result<String, KeyError> {
        match self {
            ResultKey::Order {
                host,
                rollout,
                seq,
                step,
            } => {
                id("host", host)?;
                id("rollout", rollout)?;
                if rollout == "local" {
                    return Err(KeyError(
                        "rollout \"local\": reserved for a host's local results".into(),
                    ));
                }
                Ok(format!("{host}.{rollout}.{seq}.{}", step.as_str()))
            }
            ResultKey::Local { host, operation } => {
                id("host", host)?;
                op_id(operation)?;
                Ok(format!("{host}.local.{operation}"))
            }
        }
    }

    pub fn parse(key: &str) -> Result<Self, KeyError> {
        let bad = |why: String| KeyError(format!("{RESULTS} key {key:?}: {why}"));
        let parts: Vec<&str> = key.split('.').collect();
        let k = match parts.as_slice() {
            [host, "local", op] => ResultKey::Local {
                host: host.to_string(),
                operation: op.to_string(),
            },
            [host, rollout, seq, step] => {
                // Digits only, no sign or leading zero: one text per number.
                if seq.is_empty()
                    || !seq.bytes().all(|c| c.is_ascii_digit())
                    || (seq.len() > 1 && seq.starts_with('0'))
                {
                    return Err(bad(format!("sequence {seq:?} is not a number")));
                }
                let seq = seq
                    .parse()
                    .map_err(|_| bad(format!("sequence {seq:?} is too large")))?;
                let step = match *step {
                    "started" => Step::Started,
                    "awaiting" => Step::Awaiting,
                    "final" => Step::Final,
                    s => {
                        return Err(bad(format!(
                            "step {s:?}: expected started, awaiting or final"
                        )));
                    }
                };
                ResultKey::Order {
                    host: host.to_string(),
                    rollout: rollout.to_string(),
                    seq,
                    step,
                }
            }
            _ => {
                return Err(bad(
                    "expected <host>.<rollout>.<seq>.<step> or <host>.local.<op-id>".into(),
                ));
            }
        };
        k.build().map_err(|e| bad(e.0))?;
        Ok(k)
    }
}

/// The wildcard of every result key of one host (for a watch or a
/// permission): `<host>.>`.
pub fn host_results_pattern(host: &str) -> Result<String, KeyError> {
    id("host", host)?;
    Ok(format!("{host}.>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_configs_follow_the_design_table() {
        let cfg = Config {
            lease_ttl: Duration::from_secs(2),
            replicas: 1,
        };
        let c = configs(&cfg);
        let got: Vec<(&str, i64, Duration)> = c
            .iter()
            .map(|c| (c.bucket.as_str(), c.history, c.max_age))
            .collect();
        assert_eq!(
            got,
            [
                (LEASE, 1, Duration::from_secs(2)),
                (HOSTS, 1, Duration::from_secs(600)),
                (ROLLOUTS, 16, Duration::ZERO),
                (ORDERS, 8, Duration::ZERO),
                (RESULTS, 1, Duration::from_secs(30 * 24 * 3600)),
            ]
        );
        assert!(c.iter().all(|c| c.storage == StorageType::File));
    }

    #[test]
    fn keys_round_trip() {
        assert_eq!(host_key("kiosk-01").unwrap(), "kiosk-01");
        for k in [
            RolloutKey::Spec("web-142".into()),
            RolloutKey::State("web-142".into()),
            RolloutKey::Control("web-142".into()),
            RolloutKey::Canonical("web".into()),
        ] {
            let s = k.build().unwrap();
            assert_eq!(RolloutKey::parse(&s).unwrap(), k, "{s}");
        }
        for k in [
            ResultKey::Order {
                host: "kiosk-01".into(),
                rollout: "web-142".into(),
                seq: 12,
                step: Step::Awaiting,
            },
            ResultKey::Local {
                host: "kiosk-01".into(),
                operation: "001750412346x000".into(),
            },
        ] {
            let s = k.build().unwrap();
            assert_eq!(ResultKey::parse(&s).unwrap(), k, "{s}");
        }
        assert_eq!(
            ResultKey::Order {
                host: "h".into(),
                rollout: "r".into(),
                seq: 7,
                step: Step::Final
            }
            .build()
            .unwrap(),
            "h.r.7.final"
        );
        assert_eq!(host_results_pattern("h").unwrap(), "h.>");
    }

    #[test]
    fn key_builders_reject_dots_and_wildcards() {
        for bad in ["a.b", "a*", ">", "a b", "", "A", "a.>"] {
            assert!(host_key(bad).is_err(), "{bad}");
            assert!(RolloutKey::Spec(bad.into()).build().is_err(), "{bad}");
            assert!(RolloutKey::Canonical(bad.into()).build().is_err(), "{bad}");
            assert!(
                ResultKey::Order {
                    host: bad.into(),
                    rollout: "r".into(),
                    seq: 1,
                    step: Step::Started
                }
                .build()
                .is_err(),
                "{bad}"
            );
            assert!(host_results_pattern(bad).is_err(), "{bad}");
        }
        assert!(
            ResultKey::Local {
                host: "h".into(),
                operation: "1.2".into()
            }
            .build()
            .is_err()
        );
        assert!(
            ResultKey::Order {
                host: "h".into(),
                rollout: "local".into(),
                seq: 1,
                step: Step::Final
            }
            .build()
            .is_err()
        );
    }

    #[test]
    fn parsers_reject_foreign_keys() {
        for bad in [
            "web",
            "web.spec.x",
            "web.plan",
            "a.b.spec",
            "canonical.a.b",
            "Web.spec",
        ] {
            let e = RolloutKey::parse(bad).unwrap_err();
            assert!(e.0.contains(bad), "{e}");
        }
        for bad in [
            "h.r.1",
            "h.r.x.final",
            "h.r.01.final",
            "h.r.-1.final",
            "h.r.1.done",
            "h.local",
            "h.local.a.b",
            "h.r.99999999999999999999999.final",
            "h.local.1.final",
        ] {
            assert!(ResultKey::parse(bad).is_err(), "{bad}");
        }
    }
}
