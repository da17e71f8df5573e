//! The end-to-end tests, in one binary: the real binaries and their neighbours on loopback.

mod e2e {
    // A bootstrap whose service is killed mid-install fails with a reason, and a new one works.
    mod bootstrap_sigkill;
    // docs/getting-started.md's walkthrough, run as written.
    mod getting_started;
    // schemathesis against the served OpenAPI document: no 5xx, no schema violation.
    mod schemathesis;
    // The real `talos-manager serve` as a child process.
    mod service;
}
