//! Compiles `proto/**/*.proto` (our own definitions of the Talos API subset we call) with protox
//! (pure Rust, no `protoc` binary): client stubs always, server stubs with the `server` feature.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/google/rpc/status.proto",
        "proto/common/common.proto",
        "proto/machine/machine.proto",
        "proto/machine/image.proto",
        "proto/machine/lifecycle.proto",
        "proto/cosi/resource.proto",
        "proto/cosi/state.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let server = std::env::var_os("CARGO_FEATURE_SERVER").is_some();
    let descriptors = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(server)
        // The channel is built by us (our TLS), not by the generated `connect`.
        .build_transport(false)
        // These carry a machine config or an admin kubeconfig: their Debug is written by hand.
        .skip_debug(["machine.ApplyConfigurationRequest", "common.Data"])
        .compile_fds(descriptors)?;
    Ok(())
}
