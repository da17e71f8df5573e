//! The integration tests of talos-manager-core, one module per feature.

/// The Talos engine against golden data from talosctl and the original app.
#[path = "core/talos.rs"]
mod talos;
