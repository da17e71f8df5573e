//! Fuzz target `rescue_output`: see `talos_manager_core::testing::fuzz::rescue_output` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    talos_manager_core::testing::fuzz::rescue_output(data);
});
