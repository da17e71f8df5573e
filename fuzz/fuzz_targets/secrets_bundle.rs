//! Fuzz target `secrets_bundle`: see `talos_manager_core::testing::fuzz::secrets_bundle` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    talos_manager_core::testing::fuzz::secrets_bundle(data);
});
