//! Fuzz target `record`: see [`windlass_fuzz::record`]. Under libFuzzer
//! (`tools/fuzz`) when built with `--cfg fuzzing`; otherwise it replays
//! the files and directories it is given (`cargo run -p windlass-fuzz
//! --bin record -- FILE...`), to reproduce a finding with a full backtrace.

#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| windlass_fuzz::record(data));

#[cfg(not(fuzzing))]
fn main() -> std::process::ExitCode {
    windlass_fuzz::replay_main("record", windlass_fuzz::record)
}
