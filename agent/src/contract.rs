//! What a generation promises: the generation contract, owned by the
//! `windlass-contract` crate (shared with the generator), re-exported
//! here so the agent reads it under one name.

pub use windlass_contract::*;
