//! Fuzz target `machine_config`: see `talos_manager_core::testing::fuzz::machine_config` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    talos_manager_core::testing::fuzz::machine_config(data);
});
