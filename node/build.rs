//! Compiles `proto/opsdeck.proto` with a vendored protoc, so a fresh machine needs nothing installed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY-free in edition 2021: build scripts are single-threaded at this point.
    std::env::set_var("PROTOC", protoc);
    tonic_prost_build::configure().compile_protos(&["proto/opsdeck.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto/opsdeck.proto");
    Ok(())
}
