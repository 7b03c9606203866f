//! windlass host agent (skeleton). The D-Bus service that switches
//! generations, gated on health, lands with the agent issue; until then the
//! binaries only report that they are not implemented yet.

/// The agent's version, as reported on the bus.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
