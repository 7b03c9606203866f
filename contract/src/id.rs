//! Generation ids. A generation is numbered; the number travels as a
//! string of decimal digits (D-Bus arguments, operation records, directory
//! names), so that is its serialised form too: `GenerationId(3)` is the
//! JSON string `"3"`, and records written with string ids keep loading.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GenerationId(pub u64);

/// Why a string is not a generation id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a generation id: {reason}")]
pub struct ParseGenerationIdError {
    pub input: String,
    pub reason: &'static str,
}

impl fmt::Display for GenerationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for GenerationId {
    type Err = ParseGenerationIdError;

    /// Only the canonical form: decimal digits, no sign, no leading zero
    /// (so that `id.to_string().parse() == Ok(id)` and every id has one
    /// spelling, as a directory name must).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| ParseGenerationIdError {
            input: s.to_string(),
            reason,
        };
        if s.is_empty() {
            return Err(err("it is empty"));
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("only the digits 0-9 may appear"));
        }
        if s.len() > 1 && s.starts_with('0') {
            return Err(err("it has a leading zero"));
        }
        s.parse()
            .map(GenerationId)
            .map_err(|_| err("it does not fit in 64 bits"))
    }
}

impl From<u64> for GenerationId {
    fn from(n: u64) -> Self {
        GenerationId(n)
    }
}

impl Serialize for GenerationId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GenerationId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = GenerationId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a generation id: a string of decimal digits")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<GenerationId, E> {
                s.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_the_json_string_of_its_digits() {
        assert_eq!(serde_json::to_string(&GenerationId(3)).unwrap(), r#""3""#);
        assert_eq!(
            serde_json::from_str::<GenerationId>(r#""3""#).unwrap(),
            GenerationId(3)
        );
        assert_eq!(
            serde_json::from_str::<GenerationId>(r#""18446744073709551615""#).unwrap(),
            GenerationId(u64::MAX)
        );
        assert_eq!("0".parse(), Ok(GenerationId(0)));
        assert_eq!(GenerationId(42).to_string(), "42");
    }

    #[test]
    fn anything_but_canonical_digits_is_refused() {
        for bad in [
            "",
            "+3",
            "-3",
            " 3",
            "3 ",
            "3a",
            "x",
            "03",
            "1_000",
            "٣",
            "18446744073709551616",
        ] {
            assert!(bad.parse::<GenerationId>().is_err(), "{bad:?} was accepted");
            let json = serde_json::to_string(bad).unwrap();
            assert!(
                serde_json::from_str::<GenerationId>(&json).is_err(),
                "{json} was accepted"
            );
        }
    }

    #[test]
    fn a_number_is_not_an_id() {
        let e = serde_json::from_str::<GenerationId>("3").unwrap_err();
        assert!(e.to_string().contains("a string of decimal digits"), "{e}");
    }

    #[test]
    fn the_error_names_the_input_and_the_reason() {
        let e = "+3".parse::<GenerationId>().unwrap_err();
        assert_eq!(
            e.to_string(),
            r#""+3" is not a generation id: only the digits 0-9 may appear"#
        );
    }

    #[test]
    fn ids_order_by_number_not_by_text() {
        assert!(GenerationId(9) < GenerationId(10));
    }
}
