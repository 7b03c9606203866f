//! Helpers shared by the fleet integration tests.
#![allow(dead_code)]

pub mod agent;
pub mod fake;
pub mod nats;
pub mod proxy;
pub mod simhost;
