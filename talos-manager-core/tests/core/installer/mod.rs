//! The rescue-mode installer against a real OpenSSH server on loopback and a loop device.
//! See `harness.rs` for the bench and its safety rules.

pub(crate) mod harness;
mod install;
mod plan;
mod probe;
mod runner;
mod ssh;
