//! windlass fleet rollouts over NATS JetStream key-value buckets (issue
//! 19; plan in docs/design/fleet.md). windlassd stays the only actor on a
//! host: fleetd is a D-Bus client of it, like windlassctl.
//!
//! Pure parts (no I/O): `model`, `spec`, `select`, `wave`. NATS parts:
//! `kv`, `buckets`, `lease`, `fleetd`, `coordinator`, `cli` (the
//! operator CLI). `agent` is fleetd's D-Bus seam to windlassd.

pub mod agent;
pub mod auth;
pub mod buckets;
pub mod cli;
pub mod coordinator;
pub mod fleetd;
pub mod kv;
pub mod lease;
pub mod model;
pub mod permissions;
pub mod select;
pub mod spec;
pub mod wave;
