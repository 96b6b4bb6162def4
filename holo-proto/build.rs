//! Generates the gRPC code from `proto/holo.proto` with a vendored `protoc`, so a fresh
//! machine needs no protobuf compiler installed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    config.bytes(["."]);
    tonic_prost_build::configure().compile_with_config(
        config,
        &["proto/holo.proto"],
        &["proto"],
    )?;
    println!("cargo:rerun-if-changed=proto/holo.proto");
    Ok(())
}
