//! Decode timing on the request path; ignored by default, run it in release:
//! `cargo test --release -p skiff-protobuf --test speed -- --ignored --nocapture`.

use std::time::Instant;

#[test]
#[ignore = "timing, not correctness; run in release by hand"]
fn deployment_decode_time() {
    let start = Instant::now();
    skiff_protobuf::preload().expect("schema");
    println!("schema load: {:?}", start.elapsed());
    let path = format!(
        "{}/tests/fixtures/deployment.pb",
        env!("CARGO_MANIFEST_DIR")
    );
    let body = std::fs::read(path).expect("fixture");
    let rounds = 200_000;
    let start = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(skiff_protobuf::decode(std::hint::black_box(&body)).expect("decode"));
    }
    println!(
        "deployment ({} bytes): {:?} per decode",
        body.len(),
        start.elapsed() / rounds
    );
}

#[test]
#[ignore = "timing, not correctness; run in release by hand"]
fn deployment_encode_time() {
    skiff_protobuf::preload().expect("schema");
    let path = format!(
        "{}/tests/fixtures/deployment.pb",
        env!("CARGO_MANIFEST_DIR")
    );
    let json = skiff_protobuf::decode(&std::fs::read(path).expect("fixture")).expect("decode");
    let rounds = 200_000;
    let start = Instant::now();
    let mut len = 0;
    for _ in 0..rounds {
        len = std::hint::black_box(
            skiff_protobuf::encode(std::hint::black_box(&json)).expect("encode"),
        )
        .len();
    }
    println!(
        "deployment ({} JSON bytes, {len} protobuf bytes): {:?} per encode",
        serde_json::to_vec(&json).expect("json").len(),
        start.elapsed() / rounds
    );
}
