#![no_main]

// The same exercise function runs in `cargo test` (tests/fuzz_props.rs).
#[path = "../../crates/sip-message/tests/fuzz_exercise/auth.rs"]
mod exercise;

libfuzzer_sys::fuzz_target!(|data: &[u8]| exercise::digest(data));
