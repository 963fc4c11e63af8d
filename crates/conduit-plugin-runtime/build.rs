//! Compiles the protocol definitions in `proto/` with tonic/prost.
//!
//! `protoc` comes from the `protoc-bin-vendored` crate so that a fresh machine needs
//! nothing but the Rust toolchain.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "proto/opencdc/v1/opencdc.proto",
    "proto/config/v1/parameter.proto",
    "proto/schema/v1/schema.proto",
    "proto/connutils/v1/schema.proto",
    "proto/connector/v2/specifier.proto",
    "proto/connector/v2/source.proto",
    "proto/connector/v2/destination.proto",
    "proto/plugin/grpc_controller.proto",
    "proto/plugin/grpc_stdio.proto",
    "proto/plugin/grpc_broker.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let well_known = protoc_bin_vendored::include_path()?;
    // prost-build finds protoc through this variable; build scripts are single-threaded.
    std::env::set_var("PROTOC", protoc);

    println!("cargo:rerun-if-changed=proto");
    let protos: Vec<PathBuf> = PROTOS.iter().map(PathBuf::from).collect();
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Encodes each message into a buffer reserved at its length (src/codec.rs).
        .codec_path("crate::codec::ReservingProstCodec")
        // Written by hand (src/record.rs): its metadata decodes into one buffer.
        .extern_path(".opencdc.v1.Record", "crate::record::Record")
        // Raw payloads as `Bytes`: decoded as slices of the received message instead of
        // copies, and cheap to hand on.
        .bytes(".opencdc.v1.Data.raw_data")
        .compile_protos(&protos, &[PathBuf::from("proto"), well_known])?;
    Ok(())
}
