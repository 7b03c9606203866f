//! `windlassctl` (skeleton): not implemented yet; exits 2 with a clear message.

fn main() -> std::process::ExitCode {
    if std::env::args().any(|a| a == "--version") {
        println!("windlassctl {}", windlass_agent::VERSION);
        return std::process::ExitCode::SUCCESS;
    }
    eprintln!(
        "windlassctl {}: not implemented yet",
        windlass_agent::VERSION
    );
    std::process::ExitCode::from(2)
}
