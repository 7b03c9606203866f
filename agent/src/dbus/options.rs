//! The `a{sv}` options of the bus methods, parsed once into the typed
//! options of the operations. An unknown option or a value of the wrong
//! type is refused by name.

use std::collections::HashMap;

use zbus::zvariant::OwnedValue;

use super::error::Error;
use crate::contract::GenerationId;
use crate::ops::cutover;
use crate::ops::rollback::RollbackOptions;
use crate::ops::sweep::SweepOptions;
use crate::ops::switch::SwitchOptions;

pub type Options = HashMap<String, OwnedValue>;

fn string(k: &str, v: &OwnedValue) -> Result<String, Error> {
    String::try_from(v.clone())
        .map_err(|_| Error::InvalidArgument(format!("option {k} must be a string")))
}

fn boolean(k: &str, v: &OwnedValue) -> Result<bool, Error> {
    bool::try_from(v.clone())
        .map_err(|_| Error::InvalidArgument(format!("option {k} must be a boolean")))
}

pub use crate::record::MAX_DEADLINE_SEC;

/// Seconds, as `t` or `u`, at most [`MAX_DEADLINE_SEC`].
fn seconds(k: &str, v: &OwnedValue) -> Result<u64, Error> {
    let d = u64::try_from(v.clone())
        .or_else(|_| u32::try_from(v.clone()).map(u64::from))
        .map_err(|_| Error::InvalidArgument(format!("option {k} must be seconds (t or u)")))?;
    if d > MAX_DEADLINE_SEC {
        return Err(Error::InvalidArgument(format!(
            "option {k}: {d} s is more than the maximum of {MAX_DEADLINE_SEC} s"
        )));
    }
    Ok(d)
}

/// A request id (`request`, s): checked here, so a malformed one is
/// refused before anything is looked at.
fn request(k: &str, v: &OwnedValue) -> Result<String, Error> {
    let r = string(k, v)?;
    crate::record::check_request(&r).map_err(Error::InvalidArgument)?;
    Ok(r)
}

fn unknown(k: &str) -> Error {
    Error::InvalidArgument(format!("unknown option {k:?}"))
}

/// Switch: `confirm` (s: auto, manual), `deadline` (t or u seconds),
/// `take_over` (b), `request` (s).
pub fn switch(options: &Options) -> Result<SwitchOptions, Error> {
    let mut o = SwitchOptions::default();
    for (k, v) in options {
        match k.as_str() {
            "confirm" => o.confirm = string(k, v)?.parse().map_err(Error::InvalidArgument)?,
            "deadline" => o.deadline_sec = Some(seconds(k, v)?),
            "take_over" => o.take_over = boolean(k, v)?,
            "request" => o.request = Some(request(k, v)?),
            _ => return Err(unknown(k)),
        }
    }
    Ok(o)
}

/// Rollback: `request` (s).
pub fn rollback(options: &Options) -> Result<RollbackOptions, Error> {
    let mut o = RollbackOptions::default();
    for (k, v) in options {
        match k.as_str() {
            "request" => o.request = Some(request(k, v)?),
            _ => return Err(unknown(k)),
        }
    }
    Ok(o)
}

/// Cutover: `deadline` (t or u seconds), `request` (s).
pub fn cutover(
    target: String,
    version: String,
    url: String,
    sha256: String,
    options: &Options,
) -> Result<cutover::Request, Error> {
    let mut req = cutover::Request {
        target,
        version,
        url,
        sha256,
        deadline_sec: None,
        request: None,
    };
    for (k, v) in options {
        match k.as_str() {
            "deadline" => req.deadline_sec = Some(seconds(k, v)?),
            "request" => req.request = Some(request(k, v)?),
            _ => return Err(unknown(k)),
        }
    }
    Ok(req)
}

/// Sweep: `app` (s) sweeps one app, `dry_run` (b) changes nothing,
/// `request` (s).
pub fn sweep(options: &Options) -> Result<SweepOptions, Error> {
    let mut o = SweepOptions::default();
    for (k, v) in options {
        match k.as_str() {
            "app" => o.app = Some(string(k, v)?),
            "dry_run" => o.dry_run = boolean(k, v)?,
            "request" => o.request = Some(request(k, v)?),
            _ => return Err(unknown(k)),
        }
    }
    Ok(o)
}

/// Restore: `app` (s) restores one app's drift only.
pub fn restore(options: &Options) -> Result<crate::ops::restore::RestoreOptions, Error> {
    let mut o = crate::ops::restore::RestoreOptions::default();
    for (k, v) in options {
        match k.as_str() {
            "app" => o.app = Some(string(k, v)?),
            _ => return Err(unknown(k)),
        }
    }
    Ok(o)
}

/// A generation argument: digits; `""` where the method allows none.
pub fn generation(s: &str) -> Result<GenerationId, Error> {
    s.parse()
        .map_err(|_| Error::NotFound(format!("generation {s} not found")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::zvariant::Value;

    fn opts(k: &str, v: Value<'_>) -> Options {
        HashMap::from([(k.to_string(), OwnedValue::try_from(v).unwrap())])
    }

    fn refused(r: Result<impl std::fmt::Debug, Error>) -> String {
        match r {
            Err(Error::InvalidArgument(m)) => m,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn deadlines_above_a_week_are_refused_and_never_wrap() {
        for d in [MAX_DEADLINE_SEC + 1, u64::MAX / 1_000_000 + 1, u64::MAX] {
            let m = refused(switch(&opts("deadline", Value::from(d))));
            assert!(m.contains("more than the maximum of 604800 s"), "{m}");
            let m = refused(cutover(
                "t".into(),
                "v".into(),
                "u".into(),
                "s".into(),
                &opts("deadline", Value::from(d)),
            ));
            assert!(m.contains("deadline"), "{m}");
        }
        let o = switch(&opts("deadline", Value::from(MAX_DEADLINE_SEC))).unwrap();
        assert_eq!(o.deadline_sec, Some(MAX_DEADLINE_SEC));
        let o = switch(&opts("deadline", Value::from(u32::MAX))).unwrap_err();
        assert!(matches!(o, Error::InvalidArgument(_)));
        let o = switch(&opts("deadline", Value::from(90u32))).unwrap();
        assert_eq!(o.deadline_sec, Some(90));
    }

    #[test]
    fn unknown_options_and_wrong_types_are_refused_by_name() {
        let m = refused(switch(&opts("deadline", Value::from("soon"))));
        assert!(m.contains("deadline must be seconds"), "{m}");
        let m = refused(switch(&opts("dedline", Value::from(5u64))));
        assert!(m.contains("\"dedline\""), "{m}");
        let m = refused(rollback(&opts("deadline", Value::from(5u64))));
        assert!(m.contains("unknown option"), "{m}");
        let m = refused(sweep(&opts("dry_run", Value::from("yes"))));
        assert!(m.contains("dry_run must be a boolean"), "{m}");
    }

    #[test]
    fn request_ids_are_checked_on_every_method_that_takes_one() {
        let bad = opts("request", Value::from("a b"));
        let m = refused(switch(&bad));
        assert!(m.contains("not a request id"), "{m}");
        refused(rollback(&bad));
        refused(sweep(&bad));
        refused(cutover(
            "t".into(),
            "v".into(),
            "u".into(),
            "s".into(),
            &bad,
        ));
        let m = refused(rollback(&opts("request", Value::from(5u32))));
        assert!(m.contains("request must be a string"), "{m}");
        let good = opts("request", Value::from("rollout-1/2"));
        assert_eq!(
            switch(&good).unwrap().request.as_deref(),
            Some("rollout-1/2")
        );
        assert_eq!(
            rollback(&good).unwrap().request.as_deref(),
            Some("rollout-1/2")
        );
        assert_eq!(
            sweep(&good).unwrap().request.as_deref(),
            Some("rollout-1/2")
        );
    }
}
