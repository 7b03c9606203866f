//! Fuzz target `generation`: see [`windlass_fuzz::generation`]. Under libFuzzer
//! (`tools/fuzz`) when built with `--cfg fuzzing`; otherwise it replays
//! the files and directories it is given (`cargo run -p windlass-fuzz
//! --bin generation -- FILE...`), to reproduce a finding with a full backtrace.

#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| windlass_fuzz::generation(data));

#[cfg(not(fuzzing))]
fn main() -> std::process::ExitCode {
    windlass_fuzz::replay_main("generation", windlass_fuzz::generation)
}
