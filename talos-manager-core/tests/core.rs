//! The integration tests of talos-manager-core, in one binary (faster to build and run).

mod core {
    // Storage on both backends: every test runs as `<name>::sqlite` and `<name>::postgres`.
    #[macro_use]
    mod store;
    // The SQLite and PostgreSQL migrations produce the same schema.
    mod migrations;
    // The Talos engine against golden data from talosctl and the original app.
    mod talos;
    // The Talos engine against Talos's own machinery (tests/talos-oracle), on random inputs.
    mod talos_differential;
    // Hetzner Robot and Cloud clients against the wire-level fakes (tests/fake-hetzner).
    mod provider;
    // The rescue-mode installer against a real sshd on loopback and a loop device.
    mod installer;
    // The Image Factory client against the fake factory.
    mod image_factory;
    // Fleet sync against the wire-level fakes.
    mod sync;
    // Sync, rescue and server edits through the provider seam, with in-memory fake providers.
    mod provider_flows;
    // The fuzz targets' seeds and saved findings, replayed (fuzz/, scripts/fuzz).
    mod fuzz_regressions;
    // The rendered-config cache `/config` serves from.
    mod node_config_cache;
    // A server configured through the library: the API's per-node defaults.
    mod machine_configs;
    // `/config` itself: the answers of `ConfigService`, its miss limit and its hook guard.
    mod node_config_service;
    // The config patch recipes of docs/recipes/ pass the API's config check.
    mod recipes;
    // Reset, rolling upgrades and reboots, and drain, against the in-memory Talos fake and the
    // fake Kubernetes API over mutual TLS.
    mod lifecycle;
    // A cluster's health in one call, against the in-memory Talos fake and the fake
    // Kubernetes API.
    mod cluster_health;
}
