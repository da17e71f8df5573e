//! Runnable examples of talos-manager; see `examples/README.md` and run them with
//! `cargo run -p talos-manager-examples --example <name>`.
