//! Fuzz target `patch`: see `talos_manager_core::testing::fuzz::patch` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    talos_manager_core::testing::fuzz::patch(data);
});
