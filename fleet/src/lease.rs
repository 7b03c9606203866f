//! (to be written: see docs/design/fleet.md)
