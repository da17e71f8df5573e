//! `terraform-provider-talosmanager`: the Terraform provider for talos-manager.
//!
//! Not built yet (see the Terraform provider issue): the binary says so and exits with an error,
//! so Terraform reports a clear failure instead of hanging on a handshake.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "terraform-provider-talosmanager: the Terraform provider is not implemented yet; \
         use the talos-manager admin API or dashboard for now"
    );
    ExitCode::FAILURE
}
