//! The integration tests of terraform-provider-talosmanager, in one binary.

mod provider {
    // talosmanager_cluster: secrets, client configs, update, replacement, import.
    mod cluster;
    // talosmanager_config: defaults, update, validation issues, import.
    mod config;
    // talosmanager_talosconfig and talosmanager_kubeconfig (ephemeral): no client config in
    // the state or the plan file on CLIs with ephemeral resources; the 1.0.3 fallback.
    mod ephemeral;
    // The generated docs in docs/terraform/ are up to date.
    mod docs;
    // Data sources: server lookups by id, name and filters; Talos versions.
    mod data_sources;
    // examples/terraform/basic and examples/terraform/cluster apply, and plan no changes
    // afterwards.
    mod example;
    // Readable diagnostics: bad credentials, unreachable service, invalid values.
    mod errors;
    // The harness: the service in-process, the real Terraform CLI in a temp directory.
    mod harness;
    // talosmanager_label_taint_rule: plan, apply, update, import, drift, destroy.
    mod label_taint_rule;
    // talosmanager_cluster_upgrade (rolling upgrades in place, a failing node, a timeout that
    // taints, Ctrl-C, a selection, import) and reset_on_destroy of
    // talosmanager_server_bootstrap, against fake Talos nodes and a fake Kubernetes API.
    mod lifecycle;
    // talosmanager_machine_config: computed defaults, replacement, import.
    mod machine_config;
    // The plugin process: outside Terraform, plaintext, --debug reattach.
    mod plugin;
    // talosmanager_provider_account: verified credentials, secret kept, replace, import, drift.
    mod provider_account;
    // talosmanager_schematic: the forced talos.config= argument, update, import, drift.
    mod schematic;
    // talosmanager_server: adopt, rename at Hetzner, cluster and vSwitch, import, drift,
    // destroy (the server stays).
    mod server;
    // talosmanager_server_bootstrap: a real bootstrap over SSH to a loop disk; waiting for the
    // image or the config fetch, a failed job, a timeout, import, destroy.
    mod server_bootstrap;
    // The RPCs after protocol 6.0 (metadata, functions, ephemeral resources), in-process.
    mod protocol;
    // Rules every schema declaration follows (reserved names, descriptions, ids, import).
    mod schema;
    // talosmanager_settings: the singleton.
    mod settings;
}
