//! The integration tests of talos-manager-http, in one binary.

mod http {
    // Running `talos-manager` as a process: help, bad configuration, serve, migrate.
    mod commands;
    // The process harness the other modules share.
    mod process;
}
