//! The `a{sv}` options of the bus methods, parsed once into the typed
//! options of the operations. An unknown option or a value of the wrong
//! type is refused by name.

use std::collections::HashMap;

use zbus::zvariant::OwnedValue;

use super::error::Error;
use crate::contract::GenerationId;
use crate::ops::cutover;
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

/// The longest deadline accepted: a week.
pub const MAX_DEADLINE_SEC: u64 = 7 * 24 * 3600;

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

fn unknown(k: &str) -> Error {
    Error::InvalidArgument(format!("unknown option {k:?}"))
}

/// Switch: `confirm` (s: auto, manual), `deadline` (t or u seconds).
pub fn switch(options: &Options) -> Result<SwitchOptions, Error> {
    let mut o = SwitchOptions::default();
    for (k, v) in options {
        match k.as_str() {
            "confirm" => o.confirm = string(k, v)?.parse().map_err(Error::InvalidArgument)?,
            "deadline" => o.deadline_sec = Some(seconds(k, v)?),
            _ => return Err(unknown(k)),
        }
    }
    Ok(o)
}

/// Rollback: no options.
pub fn rollback(options: &Options) -> Result<(), Error> {
    match options.keys().next() {
        Some(k) => Err(unknown(k)),
        None => Ok(()),
    }
}

/// Cutover: `deadline` (t or u seconds).
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
    };
    for (k, v) in options {
        match k.as_str() {
            "deadline" => req.deadline_sec = Some(seconds(k, v)?),
            _ => return Err(unknown(k)),
        }
    }
    Ok(req)
}

/// Sweep: `app` (s) sweeps one app, `dry_run` (b) changes nothing.
pub fn sweep(options: &Options) -> Result<SweepOptions, Error> {
    let mut o = SweepOptions::default();
    for (k, v) in options {
        match k.as_str() {
            "app" => o.app = Some(string(k, v)?),
            "dry_run" => o.dry_run = boolean(k, v)?,
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
