//! windlass host agent: `windlassd` exports `io.windlass.Agent1` on D-Bus
//! and runs operations (stage, switch, rollback) one at a time, each
//! persisted before every step so that a crash or restart resumes it or
//! rolls it back; `windlassctl` drives it.
//!
//! Layout of the state directory (default `/var/lib/windlass`):
//! `generations/<N>/` (native: imported generator output trees),
//! `profiles/system` (native: the selected generation, a symlink),
//! `objects/sha256/<hex>` (native: pristine copies of the generations'
//! files, by content),
//! `operations/<id>.json` (operation records). The run directory (default
//! `/run/windlass`) holds `current`, the running native generation.

pub mod bundle;
pub mod contract;
pub mod dbus;
pub mod drift;
pub mod durable;
pub mod fault;
pub mod health;
pub mod ops;
pub mod platform;
pub mod record;
pub mod redact;
pub mod runas;
pub mod store;
pub mod systemd;
pub mod targets;

/// The agent's version, as reported on the bus: the crate's, unless the
/// build stamps its own (`WINDLASS_VERSION=1.2.3+deb1 cargo build`), as
/// a distribution or the self-upgrade VM scenario does.
pub const VERSION: &str = match option_env!("WINDLASS_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

/// Well-known bus name, object path and interfaces.
pub const BUS_NAME: &str = "io.windlass.Agent1";
pub const OBJECT_PATH: &str = "/io/windlass/Agent1";
pub const OPERATION_PREFIX: &str = "/io/windlass/Agent1/operation";

/// Exit codes of windlassctl (documented in docs/agent.md).
pub mod exit {
    pub const COMMITTED: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const ROLLED_BACK: u8 = 3;
    pub const REFUSED: u8 = 4;
    /// `windlassctl drift --check`: the host has drifted.
    pub const DRIFT: u8 = 5;
}
