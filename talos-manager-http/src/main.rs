//! The `talos-manager` binary.

fn main() {}
