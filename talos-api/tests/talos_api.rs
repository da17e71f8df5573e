//! The one integration test binary: the gRPC client against the fake Talos API server
//! (`tests/fake-talos`) over real TLS on loopback addresses, with credentials issued from a
//! freshly generated secrets bundle.

mod talos_api {
    // The fake cluster and the clients, started together; credentials and waiting.
    mod harness;
    // Reads: version, machine status, node name, kubeconfig.
    mod reads;
    // The running machine config, dry runs and apply modes on a configured node.
    mod config;
    // etcd: members, leadership, removal, the last member's reset.
    mod etcd;
    // Reboot, the two upgrade paths, reset back to maintenance mode.
    mod lifecycle;
    // Maintenance mode: apply over unverified TLS, then the node is configured.
    mod maintenance;
    // Our .proto files against Talos's own descriptors (the v1.14 oracle): equal on the wire.
    mod proto_equality;
    // Refusals: another cluster's CA, a non-admin certificate, a wrong key usage, no listener.
    mod tls;
}
