//! Compiles the .proto files under `proto/` into Rust: prost messages, tonic clients and
//! servers, and pbjson serde implementations (proto3 JSON with the original field names).

use std::{env, path::PathBuf};

const PROTOS: &[&str] = &[
    "etcd/mvccpb/kv.proto",
    "etcd/authpb/auth.proto",
    "etcd/leasepb/lease.proto",
    "etcd/etcdserverpb/rpc.proto",
    "etcd/v3lockpb/v3lock.proto",
    "etcd/v3electionpb/v3election.proto",
    "conclave/command.proto",
    "conclave/raft.proto",
    "conclave/internal.proto",
    "conclave/plugin.proto",
    "conclave/ingest.proto",
];

const PACKAGES: &[&str] = &[
    ".mvccpb",
    ".authpb",
    ".leasepb",
    ".etcdserverpb",
    ".v3lockpb",
    ".v3electionpb",
    ".conclavepb",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("conclave_descriptor.bin");

    println!("cargo:rerun-if-changed={}", root.join("etcd").display());
    println!("cargo:rerun-if-changed={}", root.join("conclave").display());

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);

    let protos: Vec<PathBuf> = PROTOS.iter().map(|p| root.join(p)).collect();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .file_descriptor_set_path(&descriptor_path)
        .emit_rerun_if_changed(false)
        .compile_with_config(config, &protos, std::slice::from_ref(&root))?;

    let descriptors = std::fs::read(&descriptor_path)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .preserve_proto_field_names()
        .build(PACKAGES)?;

    Ok(())
}
