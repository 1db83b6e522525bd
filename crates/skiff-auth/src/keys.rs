//! The key ServiceAccount tokens are signed with: an ECDSA P-256 key (ES256, which upstream
//! accepts beside RS256) generated once into the data dir, its public half as a JWKS, and
//! the OIDC discovery document that points at it.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{json, Value};

/// Why the signing key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("ServiceAccount signing key: {0}")]
    Key(String),
}

/// The ServiceAccount token signing key.
pub struct SigningKey {
    pub(crate) encoding: EncodingKey,
    pub(crate) decoding: DecodingKey,
    /// Upstream's key id: the unpadded base64url SHA-256 of the public key's PKIX DER, so
    /// every server with the same key names it the same.
    pub kid: String,
    x: String,
    y: String,
}

/// The algorithm every token skiff issues is signed with.
pub const ALGORITHM: Algorithm = Algorithm::ES256;

impl SigningKey {
    /// Loads the PKCS#8 PEM key at `path`, generating it (mode 0600) on first start.
    pub fn load_or_create(path: &Path) -> Result<SigningKey, KeyError> {
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        if !path.exists() {
            let key = rcgen::KeyPair::generate().map_err(|e| KeyError::Key(e.to_string()))?;
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io)?;
            f.write_all(key.serialize_pem().as_bytes()).map_err(io)?;
        }
        let pem = std::fs::read_to_string(path).map_err(io)?;
        SigningKey::from_pem(&pem)
    }

    /// A key from its PKCS#8 PEM (ECDSA P-256).
    pub fn from_pem(pem: &str) -> Result<SigningKey, KeyError> {
        let bad = |e: &dyn std::fmt::Display| KeyError::Key(e.to_string());
        let pair = rcgen::KeyPair::from_pem(pem).map_err(|e| bad(&e))?;
        if pair.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
            return Err(KeyError::Key("not an ECDSA P-256 key".into()));
        }
        // The uncompressed point: 0x04, then X and Y, 32 bytes each.
        let raw = pair.public_key_raw();
        if raw.len() != 65 || raw[0] != 4 {
            return Err(KeyError::Key("unexpected public key encoding".into()));
        }
        let x = URL_SAFE_NO_PAD.encode(&raw[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&raw[33..]);
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            &rcgen::PublicKeyData::subject_public_key_info(&pair),
        );
        Ok(SigningKey {
            encoding: EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| bad(&e))?,
            decoding: DecodingKey::from_ec_components(&x, &y).map_err(|e| bad(&e))?,
            kid: URL_SAFE_NO_PAD.encode(digest.as_ref()),
            x,
            y,
        })
    }

    /// `/openid/v1/jwks`: the public key as a JSON Web Key Set.
    pub fn jwks(&self) -> Value {
        json!({"keys": [{
            "use": "sig",
            "kty": "EC",
            "kid": self.kid,
            "crv": "P-256",
            "alg": "ES256",
            "x": self.x,
            "y": self.y,
        }]})
    }
}

/// `/.well-known/openid-configuration` for `issuer`, as upstream's OIDC discovery serves
/// it; the JWKS is at the issuer's `/openid/v1/jwks` (upstream's default jwks_uri).
pub fn openid_configuration(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "jwks_uri": format!("{}/openid/v1/jwks", issuer.trim_end_matches('/')),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sa.key");
        let a = SigningKey::load_or_create(&path).unwrap();
        let b = SigningKey::load_or_create(&path).unwrap();
        assert_eq!(a.kid, b.kid);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let jwks = a.jwks();
        assert_eq!(jwks["keys"][0]["kid"], a.kid.as_str());
        assert_eq!(jwks["keys"][0]["crv"], "P-256");
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(jwks["keys"][0]["x"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
    }

    #[test]
    fn a_key_that_is_not_p256_is_refused() {
        assert!(matches!(
            SigningKey::from_pem("not a key"),
            Err(KeyError::Key(_))
        ));
    }

    #[test]
    fn discovery_points_at_the_jwks() {
        let c = openid_configuration("https://kubernetes.default.svc.cluster.local");
        assert_eq!(
            c["jwks_uri"],
            "https://kubernetes.default.svc.cluster.local/openid/v1/jwks"
        );
    }
}
