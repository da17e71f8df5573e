//! Compiles `proto/*.proto` into tonic server stubs with protox (pure Rust, no `protoc` binary).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/tfplugin6.proto", "proto/goplugin.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .generate_default_stubs(true)
        .compile_fds(descriptors)?;
    Ok(())
}
