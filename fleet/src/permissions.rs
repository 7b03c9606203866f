//! The nats-server permission block of a host's fleetd user
//! (docs/design/fleet.md §11), printed by `windlass-fleet permissions
//! HOST`. Everything not listed is denied: a host's credentials cannot
//! read another host's order, write another host's heartbeat or results,
//! write an order, or touch the rollouts bucket.
//!
//! The list is what fleetd does, found by running it under this block
//! (fleet/tests/permissions.rs holds it):
//! - `STREAM.INFO` of the four buckets it opens (`Bucket::open`, and the
//!   lease stream's creation time, the era);
//! - `DIRECT.GET` of its own order key and of the lease key (the buckets
//!   allow direct gets; `STREAM.MSG.GET` would read any key, so it is not
//!   given), and of its own result keys (a `create` that finds the key
//!   taken reads it to tell "exists" from "deleted");
//! - publishes of its heartbeat key and of its result keys (KV puts);
//! - a core subscription on its order key's subject (no consumer);
//! - replies on its own inbox prefix `_INBOX_<host>` (fleetd connects
//!   with it: [`inbox_prefix`]), so no host reads another's replies.
//!
//! Not yet: the artifact object store (fleetd does not fetch artifacts
//! yet), and blocks for the coordinator's and the operator's users.

use crate::buckets::{HOSTS, LEASE, LEASE_KEY, ORDERS, RESULTS};
use crate::model::check_id;

/// The inbox prefix of a host's fleetd connection.
pub fn inbox_prefix(host: &str) -> String {
    format!("_INBOX_{host}")
}

/// What a host's fleetd user may publish and subscribe to.
pub fn host_subjects(host: &str) -> (Vec<String>, Vec<String>) {
    let direct =
        |bucket: &str, key: &str| format!("$JS.API.DIRECT.GET.KV_{bucket}.$KV.{bucket}.{key}");
    let mut publish = vec![
        format!("$KV.{HOSTS}.{host}"),
        format!("$KV.{RESULTS}.{host}.>"),
    ];
    for b in [ORDERS, LEASE, HOSTS, RESULTS] {
        publish.push(format!("$JS.API.STREAM.INFO.KV_{b}"));
    }
    publish.push(direct(ORDERS, host));
    publish.push(direct(LEASE, LEASE_KEY));
    publish.push(direct(RESULTS, &format!("{host}.>")));
    let subscribe = vec![
        format!("$KV.{ORDERS}.{host}"),
        format!("{}.>", inbox_prefix(host)),
    ];
    (publish, subscribe)
}

/// The `permissions { … }` block for a host's fleetd user, as
/// nats-server's configuration takes it (in a user of an `authorization`
/// or `accounts` block). The host id is checked first (one key token).
pub fn host_block(host: &str) -> Result<String, String> {
    check_id("host", host)?;
    let (publish, subscribe) = host_subjects(host);
    let list = |v: &[String]| {
        v.iter()
            .map(|s| format!("      \"{s}\"\n"))
            .collect::<String>()
    };
    Ok(format!(
        "permissions {{\n  publish {{\n    allow: [\n{}    ]\n  }}\n  subscribe {{\n    allow: [\n{}    ]\n  }}\n}}\n",
        list(&publish),
        list(&subscribe)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_block_names_only_its_own_keys() {
        let b = host_block("kiosk-01").unwrap();
        let want = r#"permissions {
  publish {
    allow: [
      "$KV.windlass-hosts.kiosk-01"
      "$KV.windlass-results.kiosk-01.>"
      "$JS.API.STREAM.INFO.KV_windlass-orders"
      "$JS.API.STREAM.INFO.KV_windlass-lease"
      "$JS.API.STREAM.INFO.KV_windlass-hosts"
      "$JS.API.STREAM.INFO.KV_windlass-results"
      "$JS.API.DIRECT.GET.KV_windlass-orders.$KV.windlass-orders.kiosk-01"
      "$JS.API.DIRECT.GET.KV_windlass-lease.$KV.windlass-lease.coordinator"
      "$JS.API.DIRECT.GET.KV_windlass-results.$KV.windlass-results.kiosk-01.>"
    ]
  }
  subscribe {
    allow: [
      "$KV.windlass-orders.kiosk-01"
      "_INBOX_kiosk-01.>"
    ]
  }
}
"#;
        assert_eq!(b, want);
        // No wildcard reaches past the host's own token.
        let (publish, subscribe) = host_subjects("kiosk-01");
        for s in publish.iter().chain(&subscribe) {
            if s.contains('>') || s.contains('*') {
                assert!(s.contains("kiosk-01."), "{s}");
            }
        }
    }

    #[test]
    fn a_host_id_that_is_not_one_token_is_refused() {
        for h in ["a.b", "*", ">", "", "A"] {
            assert!(host_block(h).is_err(), "{h:?}");
        }
    }
}
