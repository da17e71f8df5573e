//! End-to-end tests across binaries: Terraform driving `terraform-provider-talosmanager` against
//! a running `talos-manager`, a Talos "node" fetching its config, an install over real SSH.
//!
//! The flows arrive with the features they exercise (see docs/testing.md); tests of a single
//! crate live in that crate's own `tests/` folder. `tests/e2e/bootstrap_sigkill.rs`: a
//! bootstrap whose service is killed mid-install fails with a reason, and a new one succeeds.
//!
//! The library holds test tooling the other crates' tests share: [`talos_oracle`] runs Talos's
//! own `pkg/machinery` (the Go programs of `tests/talos-oracle/`).

pub mod talos_oracle;
