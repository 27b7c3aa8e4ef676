#![no_main]

// The same exercise function runs in `cargo test` (crates/sipd-proxy/tests/fuzz_props.rs).
#[path = "../../crates/sipd-proxy/tests/fuzz_exercise/proxy.rs"]
mod exercise;

libfuzzer_sys::fuzz_target!(|data: &[u8]| exercise::proxy(data));
