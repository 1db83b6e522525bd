//! Value transformers, as upstream's `k8s.io/apiserver/pkg/storage/value`: a stored value is
//! the plain bytes (identity) or `<provider prefix><key name>:<ciphertext>`; reads try every
//! configured prefix in order, writes use the first.
//!
//! The ciphertext layouts are upstream's, so a value written by kube-apiserver with the same
//! key reads here and back: AES-GCM is `nonce(12) || sealed`, with the storage key as
//! authenticated data; AES-CBC is `iv(16) || blocks` with PKCS#7 padding; secretbox is NaCl's
//! `nonce(24) || tag(16) || ciphertext`. Error messages are upstream's (Go's `crypto/cipher`
//! text where upstream passes it through), since clients see them in 500 bodies.

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};

/// Why a value could not be transformed; the text is what a client reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TransformError(pub String);

fn err(message: &str) -> TransformError {
    TransformError(message.to_owned())
}

/// Turns values into their stored form and back. `ctx` is the authenticated data: the
/// storage key, so a ciphertext copied to another key does not decrypt there.
pub trait Transformer: Send + Sync {
    /// The value from its stored form, and whether it is stale: written by anything but the
    /// transformer writes use now, so a rotation must rewrite it.
    fn transform_from_storage(
        &self,
        data: &[u8],
        ctx: &[u8],
    ) -> Result<(Vec<u8>, bool), TransformError>;
    fn transform_to_storage(&self, data: &[u8], ctx: &[u8]) -> Result<Vec<u8>, TransformError>;
}

/// A transformer and the prefix its values carry.
pub struct PrefixTransformer {
    pub prefix: Vec<u8>,
    pub transformer: Box<dyn Transformer>,
}

/// Upstream's `prefixTransformers`: reads use the first transformer whose prefix matches and
/// that succeeds (an error from a prefix match does not stop later matches: the same
/// provider may appear twice while a key is rotated); writes use the first transformer.
pub struct PrefixTransformers {
    transformers: Vec<PrefixTransformer>,
    /// The error when no prefix matches at all.
    no_match: String,
}

impl PrefixTransformers {
    /// `transformers` must not be empty (configuration validation guarantees it).
    pub fn new(no_match: &str, transformers: Vec<PrefixTransformer>) -> PrefixTransformers {
        PrefixTransformers {
            transformers,
            no_match: no_match.to_owned(),
        }
    }

    /// The prefix values are written with.
    pub fn write_prefix(&self) -> &[u8] {
        self.transformers
            .first()
            .map(|t| t.prefix.as_slice())
            .unwrap_or_default()
    }
}

impl Transformer for PrefixTransformers {
    fn transform_from_storage(
        &self,
        data: &[u8],
        ctx: &[u8],
    ) -> Result<(Vec<u8>, bool), TransformError> {
        let mut errors: Vec<String> = Vec::new();
        for (i, t) in self.transformers.iter().enumerate() {
            let Some(rest) = data.strip_prefix(t.prefix.as_slice()) else {
                continue;
            };
            match t.transformer.transform_from_storage(rest, ctx) {
                // An identity reader refusing encrypted data lets the encrypted readers try.
                Err(_) if t.prefix.is_empty() => continue,
                Err(e) => errors.push(e.0),
                Ok((value, stale)) => return Ok((value, stale || i != 0)),
            }
        }
        if errors.is_empty() {
            return Err(TransformError(self.no_match.clone()));
        }
        Err(TransformError(aggregate(errors)))
    }

    fn transform_to_storage(&self, data: &[u8], ctx: &[u8]) -> Result<Vec<u8>, TransformError> {
        let first = self
            .transformers
            .first()
            .ok_or_else(|| TransformError(self.no_match.clone()))?;
        let sealed = first.transformer.transform_to_storage(data, ctx)?;
        let mut out = Vec::with_capacity(first.prefix.len() + sealed.len());
        out.extend_from_slice(&first.prefix);
        out.extend_from_slice(&sealed);
        Ok(out)
    }
}

/// apimachinery's `errors.Reduce(NewAggregate(errs))` text: one error alone, several as
/// `[a, b]` with repeated messages said once.
fn aggregate(errors: Vec<String>) -> String {
    let mut unique: Vec<String> = Vec::new();
    for e in errors {
        if !unique.contains(&e) {
            unique.push(e);
        }
    }
    if unique.len() == 1 {
        return unique.remove(0);
    }
    format!("[{}]", unique.join(", "))
}

/// Upstream's identity transformer: values pass unchanged, but encrypted data (the reserved
/// `k8s:enc:` prefix) is refused rather than handed out as an object.
pub struct Identity;

impl Transformer for Identity {
    fn transform_from_storage(
        &self,
        data: &[u8],
        _ctx: &[u8],
    ) -> Result<(Vec<u8>, bool), TransformError> {
        if data.starts_with(b"k8s:enc:") {
            return Err(err("identity transformer tried to read encrypted data"));
        }
        Ok((data.to_vec(), false))
    }

    fn transform_to_storage(&self, data: &[u8], _ctx: &[u8]) -> Result<Vec<u8>, TransformError> {
        Ok(data.to_vec())
    }
}

const SHORT: &str = "the stored data was shorter than the required size";

/// An AES key of one of the three sizes Go's `aes.NewCipher` accepts.
#[derive(Clone)]
pub enum AesKey {
    Aes128([u8; 16]),
    Aes192([u8; 24]),
    Aes256([u8; 32]),
}

impl AesKey {
    /// Go's `crypto/aes` error text for any other length.
    pub fn new(key: &[u8]) -> Result<AesKey, TransformError> {
        Ok(match key.len() {
            16 => AesKey::Aes128(key.try_into().expect("length checked")),
            24 => AesKey::Aes192(key.try_into().expect("length checked")),
            32 => AesKey::Aes256(key.try_into().expect("length checked")),
            n => return Err(TransformError(format!("crypto/aes: invalid key size {n}"))),
        })
    }
}

type Aes192Gcm = aes_gcm::AesGcm<aes::Aes192, aes_gcm::aead::consts::U12>;

/// AES-GCM with a random 96-bit nonce per write; the storage key is authenticated.
pub struct AesGcm {
    key: AesKey,
}

impl AesGcm {
    pub fn new(key: AesKey) -> AesGcm {
        AesGcm { key }
    }
}

const GCM_NONCE: usize = 12;

impl Transformer for AesGcm {
    fn transform_from_storage(
        &self,
        data: &[u8],
        ctx: &[u8],
    ) -> Result<(Vec<u8>, bool), TransformError> {
        if data.len() < GCM_NONCE {
            return Err(err(SHORT));
        }
        let (nonce, sealed) = data.split_at(GCM_NONCE);
        let nonce = aes_gcm::Nonce::from_slice(nonce);
        let payload = Payload {
            msg: sealed,
            aad: ctx,
        };
        let opened = match &self.key {
            AesKey::Aes128(k) => aes_gcm::Aes128Gcm::new(k.into()).decrypt(nonce, payload),
            AesKey::Aes192(k) => Aes192Gcm::new(k.into()).decrypt(nonce, payload),
            AesKey::Aes256(k) => aes_gcm::Aes256Gcm::new(k.into()).decrypt(nonce, payload),
        };
        // Go's crypto/cipher text for a failed open.
        let value = opened.map_err(|_| err("cipher: message authentication failed"))?;
        Ok((value, false))
    }

    fn transform_to_storage(&self, data: &[u8], ctx: &[u8]) -> Result<Vec<u8>, TransformError> {
        let mut nonce = [0u8; GCM_NONCE];
        OsRng
            .try_fill_bytes(&mut nonce)
            .map_err(|e| TransformError(format!("failed to write nonce for AES-GCM: {e}")))?;
        let n = aes_gcm::Nonce::from_slice(&nonce);
        let payload = Payload {
            msg: data,
            aad: ctx,
        };
        let sealed = match &self.key {
            AesKey::Aes128(k) => aes_gcm::Aes128Gcm::new(k.into()).encrypt(n, payload),
            AesKey::Aes192(k) => Aes192Gcm::new(k.into()).encrypt(n, payload),
            AesKey::Aes256(k) => aes_gcm::Aes256Gcm::new(k.into()).encrypt(n, payload),
        }
        .map_err(|_| err("cipher: message too large for GCM"))?;
        let mut out = Vec::with_capacity(GCM_NONCE + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }
}

/// AES-CBC with PKCS#7 padding and a random IV: upstream keeps it for old data but no longer
/// recommends it (no integrity: a flipped bit decrypts to garbage instead of failing).
pub struct AesCbc {
    key: AesKey,
}

impl AesCbc {
    pub fn new(key: AesKey) -> AesCbc {
        AesCbc { key }
    }
}

const BLOCK: usize = 16;

fn cbc_decrypt<C>(key: &[u8], iv: &[u8], blocks: &mut [u8])
where
    C: BlockDecryptMut + KeyIvInit,
{
    // Lengths were checked by the caller: the key by AesKey, the IV and blocks here.
    let mut d = C::new_from_slices(key, iv).expect("key and IV sizes checked");
    for block in blocks.chunks_exact_mut(BLOCK) {
        d.decrypt_block_mut(block.into());
    }
}

fn cbc_encrypt<C>(key: &[u8], iv: &[u8], blocks: &mut [u8])
where
    C: BlockEncryptMut + KeyIvInit,
{
    let mut e = C::new_from_slices(key, iv).expect("key and IV sizes checked");
    for block in blocks.chunks_exact_mut(BLOCK) {
        e.encrypt_block_mut(block.into());
    }
}

impl Transformer for AesCbc {
    fn transform_from_storage(
        &self,
        data: &[u8],
        _ctx: &[u8],
    ) -> Result<(Vec<u8>, bool), TransformError> {
        if data.len() < BLOCK {
            return Err(err(SHORT));
        }
        let (iv, rest) = data.split_at(BLOCK);
        if rest.len() % BLOCK != 0 {
            return Err(err("the stored data is not a multiple of the block size"));
        }
        let mut out = rest.to_vec();
        match &self.key {
            AesKey::Aes128(k) => cbc_decrypt::<cbc::Decryptor<aes::Aes128>>(k, iv, &mut out),
            AesKey::Aes192(k) => cbc_decrypt::<cbc::Decryptor<aes::Aes192>>(k, iv, &mut out),
            AesKey::Aes256(k) => cbc_decrypt::<cbc::Decryptor<aes::Aes256>>(k, iv, &mut out),
        }
        let pad = out.last().copied().unwrap_or(0) as usize;
        if pad == 0 || pad > out.len() {
            return Err(err("invalid PKCS7 data (empty or not padded)"));
        }
        let size = out.len() - pad;
        if out[size..].iter().any(|&b| b as usize != pad) {
            return Err(err("invalid padding on input"));
        }
        out.truncate(size);
        Ok((out, false))
    }

    fn transform_to_storage(&self, data: &[u8], _ctx: &[u8]) -> Result<Vec<u8>, TransformError> {
        let pad = BLOCK - data.len() % BLOCK;
        let mut out = vec![0u8; BLOCK + data.len() + pad];
        OsRng
            .try_fill_bytes(&mut out[..BLOCK])
            .map_err(|_| err("unable to read sufficient random bytes"))?;
        out[BLOCK..BLOCK + data.len()].copy_from_slice(data);
        out[BLOCK + data.len()..].fill(pad as u8);
        let (iv, blocks) = out.split_at_mut(BLOCK);
        match &self.key {
            AesKey::Aes128(k) => cbc_encrypt::<cbc::Encryptor<aes::Aes128>>(k, iv, blocks),
            AesKey::Aes192(k) => cbc_encrypt::<cbc::Encryptor<aes::Aes192>>(k, iv, blocks),
            AesKey::Aes256(k) => cbc_encrypt::<cbc::Encryptor<aes::Aes256>>(k, iv, blocks),
        }
        Ok(out)
    }
}

/// NaCl secretbox (XSalsa20-Poly1305) with a random 192-bit nonce: large enough that random
/// nonces never repeat in practice, so a key needs no rotation for wear-out.
pub struct Secretbox {
    cipher: crypto_secretbox::XSalsa20Poly1305,
}

const SECRETBOX_NONCE: usize = 24;
const SECRETBOX_TAG: usize = 16;

impl Secretbox {
    pub fn new(key: &[u8; 32]) -> Secretbox {
        Secretbox {
            cipher: crypto_secretbox::XSalsa20Poly1305::new(key.into()),
        }
    }
}

impl Transformer for Secretbox {
    fn transform_from_storage(
        &self,
        data: &[u8],
        _ctx: &[u8],
    ) -> Result<(Vec<u8>, bool), TransformError> {
        if data.len() < SECRETBOX_NONCE + SECRETBOX_TAG {
            return Err(err(SHORT));
        }
        let (nonce, sealed) = data.split_at(SECRETBOX_NONCE);
        let value = self
            .cipher
            .decrypt(crypto_secretbox::Nonce::from_slice(nonce), sealed)
            // Upstream's (misleading) text for a failed open, kept so messages match.
            .map_err(|_| err("output array was not large enough for encryption"))?;
        Ok((value, false))
    }

    fn transform_to_storage(&self, data: &[u8], _ctx: &[u8]) -> Result<Vec<u8>, TransformError> {
        let mut nonce = [0u8; SECRETBOX_NONCE];
        OsRng
            .try_fill_bytes(&mut nonce)
            .map_err(|_| err("unable to read sufficient random bytes"))?;
        let sealed = self
            .cipher
            .encrypt(crypto_secretbox::Nonce::from_slice(&nonce), data)
            .map_err(|_| err("unable to seal the value"))?;
        let mut out = Vec::with_capacity(SECRETBOX_NONCE + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    //! Upstream's transformer tests (`value/transformer_test.go`, `encrypt/aes/aes_test.go`,
    //! `encrypt/secretbox/secretbox_test.go`, `encrypt/identity`), ported.
    use super::*;

    const CTX: &[u8] = b"authenticated_data";

    fn prefixed(pairs: Vec<(&str, Box<dyn Transformer>)>) -> PrefixTransformers {
        PrefixTransformers::new(
            "test error",
            pairs
                .into_iter()
                .map(|(p, t)| PrefixTransformer {
                    prefix: p.as_bytes().to_vec(),
                    transformer: t,
                })
                .collect(),
        )
    }

    fn gcm(key: &[u8]) -> Box<dyn Transformer> {
        Box::new(AesGcm::new(AesKey::new(key).unwrap()))
    }
    fn cbc(key: &[u8]) -> Box<dyn Transformer> {
        Box::new(AesCbc::new(AesKey::new(key).unwrap()))
    }
    fn secretbox(key: [u8; 32]) -> Box<dyn Transformer> {
        Box::new(Secretbox::new(&key))
    }

    /// The rotation case every upstream provider test has: writes use the first prefix,
    /// reads through a later one are stale, and (for AEADs) the context is authenticated.
    fn key_rotation(
        first: &dyn Fn() -> Box<dyn Transformer>,
        second: &dyn Fn() -> Box<dyn Transformer>,
        authenticates: bool,
    ) {
        let p = prefixed(vec![("first:", first()), ("second:", second())]);
        let out = p.transform_to_storage(b"firstvalue", CTX).unwrap();
        assert!(out.starts_with(b"first:"), "{out:?}");
        assert_eq!(
            p.transform_from_storage(&out, CTX).unwrap(),
            (b"firstvalue".to_vec(), false)
        );
        let other = p.transform_from_storage(&out, b"incorrect_context");
        assert_eq!(other.is_err(), authenticates, "{other:?}");
        let p = prefixed(vec![("second:", second()), ("first:", first())]);
        assert_eq!(
            p.transform_from_storage(&out, CTX).unwrap(),
            (b"firstvalue".to_vec(), true)
        );
    }

    #[test]
    fn gcm_key_rotation() {
        key_rotation(
            &|| gcm(b"abcdefghijklmnop"),
            &|| gcm(b"0123456789abcdef"),
            true,
        );
    }

    #[test]
    fn cbc_key_rotation() {
        // CBC mode does not authenticate: another context still decrypts.
        key_rotation(
            &|| cbc(b"abcdefghijklmnop"),
            &|| cbc(b"0123456789abcdef"),
            false,
        );
    }

    #[test]
    fn secretbox_key_rotation() {
        // Secretbox does not take authenticated data (upstream's test asserts the same).
        key_rotation(&|| secretbox([1; 32]), &|| secretbox([2; 32]), false);
    }

    #[test]
    fn gcm_reads_data_upstream_wrote() {
        // TestGCMLegacyDataCompatibility: recorded kube-apiserver output.
        let stored: &[u8] = b"\x9f'\xc8\xfc\xea\x8aX\xc4g\xd8\xe47\xdb\xf2\xd8YU\xf9\xb4\xbd\x91/N\xf9g\xd7\x88\xa0\xcb\x07y}\xac\n?\n\x08E`\\\xa8Z\xc8V+J\xe1";
        let t = gcm(b"snorlax_awesomes");
        let (value, stale) = t.transform_from_storage(stored, b"bamboo").unwrap();
        assert_eq!(
            (value.as_slice(), stale),
            (&b"pandas are the best"[..], false)
        );
    }

    #[test]
    fn gcm_nonce_is_twelve_random_bytes() {
        // TestGCMDataStable and TestGCMNonce: the layout on disk is nonce(12) || sealed.
        let t = gcm(b"abcdefghijklmnop");
        let mut nonces = std::collections::HashSet::new();
        for i in 0..1000usize {
            let value = vec![(i % 8) as u8; 1000];
            let out = t.transform_to_storage(&value, CTX).unwrap();
            assert_eq!(out.len(), 12 + 1000 + 16);
            assert_ne!(&out[..4], &[0, 0, 0, 0]);
            assert!(nonces.insert(out[..12].to_vec()), "nonce repeated");
            assert_eq!(t.transform_from_storage(&out, CTX).unwrap().0, value);
        }
    }

    #[test]
    fn aes_key_sizes_are_go_s() {
        for ok in [16, 24, 32] {
            let key = vec![7u8; ok];
            for t in [gcm(&key), cbc(&key)] {
                let out = t.transform_to_storage(b"v", CTX).unwrap();
                assert_eq!(t.transform_from_storage(&out, CTX).unwrap().0, b"v");
            }
        }
        assert_eq!(
            AesKey::new(&[0; 15]).err().unwrap().0,
            "crypto/aes: invalid key size 15"
        );
    }

    #[test]
    fn cbc_padding() {
        // TestCBCPadding: every length round-trips, padding always adds 1..=16 bytes.
        let t = cbc(b"abcdefghijklmnop");
        for len in 0..=33usize {
            let value = vec![b'x'; len];
            let out = t.transform_to_storage(&value, CTX).unwrap();
            assert_eq!(out.len(), 16 + (len / 16 + 1) * 16);
            assert_eq!(t.transform_from_storage(&out, CTX).unwrap().0, value);
        }
    }

    #[test]
    fn cbc_invalid_data() {
        // TestCBCInvalidData (the empty-blocks case panics in Go; here it is an error).
        let t = cbc(b"abcdefghijklmnop");
        let good = t.transform_to_storage(b"value", CTX).unwrap();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![0; 3], SHORT),
            (
                vec![0; 17],
                "the stored data is not a multiple of the block size",
            ),
            (vec![0; 16], "invalid PKCS7 data (empty or not padded)"),
        ];
        for (data, want) in cases {
            assert_eq!(t.transform_from_storage(&data, CTX).unwrap_err().0, want);
        }
        // A flipped bit in the last block garbles the padding.
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last - 16] ^= 0xff;
        assert!(t.transform_from_storage(&bad, CTX).is_err());
    }

    #[test]
    fn aead_tampering_fails() {
        for t in [gcm(&[3; 32]), secretbox([3; 32])] {
            let mut out = t.transform_to_storage(b"value", CTX).unwrap();
            let last = out.len() - 1;
            out[last] ^= 1;
            assert!(t.transform_from_storage(&out, CTX).is_err());
            assert_eq!(
                t.transform_from_storage(&out[..5], CTX).unwrap_err().0,
                SHORT
            );
        }
        let t = secretbox([3; 32]);
        let out = t.transform_to_storage(b"value", CTX).unwrap();
        // nonce(24) || tag(16) || ciphertext, as NaCl's secretbox.Seal.
        assert_eq!(out.len(), 24 + 16 + 5);
        assert_eq!(
            secretbox([4; 32])
                .transform_from_storage(&out, CTX)
                .unwrap_err()
                .0,
            "output array was not large enough for encryption"
        );
    }

    #[test]
    fn prefix_transformers() {
        // value/transformer_test.go TestPrefixFrom / TestPrefixTo, with identity's checks.
        let p = prefixed(vec![
            ("k8s:enc:secretbox:v1:a:", secretbox([1; 32])),
            ("", Box::new(Identity)),
        ]);
        let plain = br#"{"kind":"Secret"}"#;
        assert_eq!(
            p.transform_from_storage(plain, CTX).unwrap(),
            (plain.to_vec(), true)
        );
        let sealed = p.transform_to_storage(plain, CTX).unwrap();
        assert!(sealed.starts_with(b"k8s:enc:secretbox:v1:a:"));
        assert_eq!(
            p.transform_from_storage(&sealed, CTX).unwrap(),
            (plain.to_vec(), false)
        );
        // An unknown key: identity refuses encrypted data, nothing else matches.
        assert_eq!(
            p.transform_from_storage(b"k8s:enc:secretbox:v1:b:xxxx", CTX)
                .unwrap_err()
                .0,
            "test error"
        );
        // Two matching prefixes that both fail: both errors, aggregated.
        let p = prefixed(vec![
            ("k8s:enc:aesgcm:v1:", gcm(&[1; 16])),
            ("k8s:enc:aesgcm:v1:", cbc(&[1; 16])),
        ]);
        assert_eq!(
            p.transform_from_storage(b"k8s:enc:aesgcm:v1:0123456789abcdefg", CTX)
                .unwrap_err()
                .0,
            "[cipher: message authentication failed, the stored data is not a multiple of the block size]"
        );
        // Identity first: plain data is current, encrypted data still reads (stale).
        let p = prefixed(vec![
            ("", Box::new(Identity)),
            ("k8s:enc:secretbox:v1:a:", secretbox([1; 32])),
        ]);
        assert_eq!(
            p.transform_from_storage(plain, CTX).unwrap(),
            (plain.to_vec(), false)
        );
        assert_eq!(
            p.transform_from_storage(&sealed, CTX).unwrap(),
            (plain.to_vec(), true)
        );
        assert_eq!(p.transform_to_storage(plain, CTX).unwrap(), plain.to_vec());
        assert_eq!(
            Identity
                .transform_from_storage(b"k8s:enc:x", CTX)
                .unwrap_err()
                .0,
            "identity transformer tried to read encrypted data"
        );
    }
}
