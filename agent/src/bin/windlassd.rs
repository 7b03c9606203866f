//! `windlassd` (skeleton): not implemented yet; exits 2 with a clear message.

fn main() -> std::process::ExitCode {
    if std::env::args().any(|a| a == "--version") {
        println!("windlassd {}", windlass_agent::VERSION);
        return std::process::ExitCode::SUCCESS;
    }
    eprintln!("windlassd {}: not implemented yet", windlass_agent::VERSION);
    std::process::ExitCode::from(2)
}
