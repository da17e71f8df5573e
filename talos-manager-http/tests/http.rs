//! The integration tests of talos-manager-http, in one binary.

mod http {
    // Clusters (secrets, talosconfig, kubeconfig) and configs (checked by generating them).
    mod api_clusters_configs;
    // Label and taint rules, settings, tokens, authentication and the error shape.
    mod api_admin;
    // The security review's attacks through the real HTTP surface: none gets a config, a
    // write or unbounded memory.
    mod attacks;
    // Machine configs: defaults from the server's name and disks, validation.
    mod api_machine_configs;
    // Image Factory schematics and Talos versions, against the fake factory.
    mod api_schematics;
    // Provider accounts, verified against the fake Hetzner APIs.
    mod api_provider_accounts;
    // Rescue and bootstrap against the fake Robot and a real sshd rescue host; server states.
    mod api_bootstrap;
    // Destructive operations guarded: bootstrapping a live node (refused without force, and for
    // a control plane etcd decides), deleting a cluster in use.
    mod destructive_guards;
    // A node's machine type is recorded and changed only explicitly, not by a provider rename.
    mod node_role;
    // Servers and jobs, including a job's live log.
    mod api_servers_jobs;
    // Sync through the API with the SSH probe, server edits pushed to the providers, seeding,
    // and the servers' live events.
    mod api_servers_sync;
    // The web dashboard in headless Chromium: sign in, clusters, configs, servers, a live job log,
    // a whole bootstrap with the servers page updating live, and its polling fallback.
    mod dashboard;
    // Every operation needs credentials, except the listed public endpoints.
    mod auth_coverage;
    // The job worker: run, log, fail, cancel, recover, never twice.
    mod jobs;
    // Label and taint rules applied to nodes in a fake Kubernetes API; the running version.
    mod labels_taints;
    // Reset, rolling upgrades and reboots against the fake Talos and Kubernetes APIs.
    mod lifecycle;
    // etcd bootstrap of a new cluster: queued by the first control plane's config fetch.
    mod cluster_bootstrap;
    // A cluster's health through the API and /metrics, over the gRPC client against the fake
    // Talos API and the fake Kubernetes API.
    mod cluster_health;
    // Running `talos-manager` as a process: help, bad configuration, serve, migrate, token.
    mod commands;
    // /metrics and request ids.
    mod metrics;
    // A new user's way with the defaults: bootstrap, /config, checked by Talos's own machinery.
    mod new_user;
    // GET /config as a booting node, and as an impostor.
    mod node_boot;
    // The checked-in OpenAPI document is up to date, and served.
    mod openapi;
    // The process harness for `commands`.
    mod process;
    // Concurrent /config load with admin writes: no 5xx, no lost update.
    mod reliability;
    // A whole flow through the binary leaves no secret in plaintext in the database or the log.
    mod secrets_at_rest;
    // The in-process service harness for the API tests.
    mod server;
}
