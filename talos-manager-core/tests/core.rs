//! The integration tests of talos-manager-core, in one binary (faster to build and run).

mod core {
    // Hetzner Robot and Cloud clients against the wire-level fakes (tests/fake-hetzner).
    mod provider;
}
