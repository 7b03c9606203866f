//! `windlass-fleet`: the operator CLI (see windlass_fleet::cli). main
//! only wires.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    ExitCode::from(windlass_fleet::cli::main().await)
}
