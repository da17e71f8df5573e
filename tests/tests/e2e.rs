//! The end-to-end tests of talos-manager, in one binary.

mod e2e {
    // A bootstrap whose service is killed mid-install fails with a reason, and a new one works.
    mod bootstrap_sigkill;
    // The real `talos-manager serve` as a child process.
    mod service;
}
