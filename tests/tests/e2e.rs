//! The end-to-end tests, in one binary: the real binaries and their neighbours on loopback.

mod e2e {
    // docs/getting-started.md's walkthrough, run as written.
    mod getting_started;
}
