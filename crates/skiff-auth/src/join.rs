//! The cluster's shared keys sealed with the server token, so that servers joining a
//! cluster through its datastore get the same CA, signing keys, encryption key and admin
//! token as the first (k3s's encrypted bootstrap data, under a key named by a hash of the
//! token). Anyone who can read the datastore but has no token learns nothing from it.
//!
//! The key is derived from the token with PBKDF2-HMAC-SHA256 over a random salt (slow on
//! purpose: tokens may be guessable words), the files sealed with AES-256-GCM.

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

/// PBKDF2 rounds (OWASP's figure for HMAC-SHA256); one derivation per server start.
const ROUNDS: u32 = 600_000;
const SALT_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The datastore's bootstrap data does not open with this token.
    #[error("the cluster's bootstrap data does not open with this token (is --token the one the first server was given?)")]
    WrongToken,
    #[error("the cluster's bootstrap data is malformed: {0}")]
    Malformed(String),
    #[error("no randomness for sealing: {0}")]
    Random(String),
}

/// What the datastore holds: salt, nonce and sealed files, base64 in JSON.
#[derive(serde::Serialize, serde::Deserialize)]
struct Sealed {
    salt: String,
    nonce: String,
    sealed: String,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The name of a token's bootstrap data: a SHA-256 prefix of the token, so servers given
/// the same token find it and the name does not reveal the token.
pub fn token_id(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn key(token: &str, salt: &[u8]) -> LessSafeKey {
    let mut key = [0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        NonZeroU32::new(ROUNDS).expect("non-zero rounds"),
        salt,
        token.as_bytes(),
        &mut key,
    );
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).expect("a 32-byte AES key"))
}

/// Seals `files` (name → contents) with `token`.
pub fn seal(token: &str, files: &BTreeMap<String, Vec<u8>>) -> Result<Vec<u8>, JoinError> {
    let rng = SystemRandom::new();
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut salt)
        .and_then(|()| rng.fill(&mut nonce))
        .map_err(|e| JoinError::Random(e.to_string()))?;
    let plain: BTreeMap<&String, String> = files
        .iter()
        .map(|(name, contents)| (name, b64().encode(contents)))
        .collect();
    let mut data = serde_json::to_vec(&plain).expect("a map of strings serializes");
    key(token, &salt)
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
        .map_err(|_| JoinError::Malformed("sealing failed".into()))?;
    Ok(serde_json::to_vec(&Sealed {
        salt: b64().encode(salt),
        nonce: b64().encode(nonce),
        sealed: b64().encode(data),
    })
    .expect("strings serialize"))
}

/// Opens what [`seal`] made with the same `token`.
pub fn open(token: &str, sealed: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, JoinError> {
    let malformed = |what: &str| JoinError::Malformed(what.to_owned());
    let outer: Sealed = serde_json::from_slice(sealed).map_err(|e| malformed(&e.to_string()))?;
    let salt = b64().decode(&outer.salt).map_err(|_| malformed("salt"))?;
    let nonce: [u8; NONCE_LEN] = b64()
        .decode(&outer.nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or_else(|| malformed("nonce"))?;
    let mut data = b64().decode(&outer.sealed).map_err(|_| malformed("data"))?;
    let plain = key(token, &salt)
        .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
        .map_err(|_| JoinError::WrongToken)?;
    let files: BTreeMap<String, String> =
        serde_json::from_slice(plain).map_err(|e| malformed(&e.to_string()))?;
    files
        .into_iter()
        .map(|(name, contents)| {
            let contents = b64().decode(contents).map_err(|_| malformed(&name))?;
            Ok((name, contents))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([
            ("ca.crt".to_owned(), b"-----BEGIN CERTIFICATE-----".to_vec()),
            ("admin.token".to_owned(), b"abc".to_vec()),
            ("empty".to_owned(), Vec::new()),
        ])
    }

    #[test]
    fn sealed_files_open_with_the_token_only() {
        let sealed = seal("s3cret", &files()).unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("abc"));
        assert_eq!(open("s3cret", &sealed).unwrap(), files());
        assert!(matches!(open("other", &sealed), Err(JoinError::WrongToken)));
        // Each sealing draws its own salt and nonce.
        assert_ne!(seal("s3cret", &files()).unwrap(), sealed);
    }

    #[test]
    fn tampered_or_garbage_data_is_refused() {
        let sealed = seal("s3cret", &files()).unwrap();
        let mut outer: serde_json::Value = serde_json::from_slice(&sealed).unwrap();
        let mut data = b64().decode(outer["sealed"].as_str().unwrap()).unwrap();
        data[0] ^= 1;
        outer["sealed"] = b64().encode(data).into();
        let tampered = serde_json::to_vec(&outer).unwrap();
        assert!(matches!(
            open("s3cret", &tampered),
            Err(JoinError::WrongToken)
        ));
        for garbage in [
            &b""[..],
            b"{}",
            b"not json",
            br#"{"salt":"","nonce":"AA==","sealed":""}"#,
        ] {
            assert!(
                matches!(open("s3cret", garbage), Err(JoinError::Malformed(_))),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn the_token_id_names_the_token_without_revealing_it() {
        assert_eq!(token_id("s3cret"), token_id("s3cret"));
        assert_ne!(token_id("s3cret"), token_id("other"));
        assert_eq!(token_id("s3cret").len(), 12);
        assert!(!token_id("s3cret").contains("s3cret"));
    }
}
