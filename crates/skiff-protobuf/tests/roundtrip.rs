//! Bodies captured from real kubectl, decoded to JSON, encoded again and decoded once more
//! give the same JSON: the encoder is the decoder's inverse on what Go clients send.

use serde_json::Value;

#[test]
fn every_captured_kubectl_body_round_trips() {
    let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("fixtures") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "pb") {
            continue;
        }
        let body = std::fs::read(&path).expect("fixture");
        let json: Value = skiff_protobuf::decode(&body).expect("decode");
        let encoded =
            skiff_protobuf::encode(&json).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let again = skiff_protobuf::decode(&encoded).expect("decode again");
        assert_eq!(again, json, "{}", path.display());
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} fixtures");
}
