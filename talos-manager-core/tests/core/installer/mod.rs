//! The rescue-mode installer against a real OpenSSH server on loopback and a loop device.
//! The bench (sshd, stub tools, loop disk, test image, HTTP server) and its safety rules are in
//! the shared test-support crate `tests/rescue-host` (`talos-manager-rescue-host`).

use talos_manager_rescue_host as harness;
mod install;
mod plan;
mod probe;
mod runner;
mod ssh;
