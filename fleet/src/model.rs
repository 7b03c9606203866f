//! The fleet's shared vocabulary: identifiers and the epoch. Pure, no I/O.

use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::*;

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
