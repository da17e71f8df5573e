//! Fuzz target `config_request`: see `talos_manager_core::testing::fuzz::config_request` for
//! what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    talos_manager_core::testing::fuzz::config_request(data);
});
