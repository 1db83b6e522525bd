//! Upstream's EncryptionConfiguration (`apiserver.config.k8s.io/v1`), read unchanged from
//! kube-apiserver's `--encryption-provider-config` file, and the transformers it describes.

use std::sync::Arc;

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::transformer::{
    AesCbc, AesGcm, AesKey, Identity, PrefixTransformer, PrefixTransformers, Secretbox, Transformer,
};

pub const API_VERSION: &str = "apiserver.config.k8s.io/v1";
pub const KIND: &str = "EncryptionConfiguration";
pub const AESGCM_PREFIX: &str = "k8s:enc:aesgcm:v1:";
pub const AESCBC_PREFIX: &str = "k8s:enc:aescbc:v1:";
pub const SECRETBOX_PREFIX: &str = "k8s:enc:secretbox:v1:";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionConfiguration {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub resources: Vec<ResourceConfiguration>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceConfiguration {
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub providers: Vec<ProviderConfiguration>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProviderConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aesgcm: Option<KeysConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aescbc: Option<KeysConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secretbox: Option<KeysConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeysConfiguration {
    #[serde(default)]
    pub keys: Vec<Key>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Key {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub secret: String,
}

/// A configuration that cannot be used; the text says which part and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn bad(message: impl Into<String>) -> ConfigError {
    ConfigError(message.into())
}

impl EncryptionConfiguration {
    /// Parses a file's contents (YAML or JSON, as upstream's decoder).
    pub fn parse(data: &str) -> Result<EncryptionConfiguration, ConfigError> {
        let config: EncryptionConfiguration =
            serde_yaml::from_str(data).map_err(|e| bad(e.to_string()))?;
        if config.kind != KIND || config.api_version != API_VERSION {
            return Err(bad(format!(
                "got unexpected config type: {}, Kind={}",
                config.api_version, config.kind
            )));
        }
        config.validate()?;
        Ok(config)
    }

    /// Upstream's structural validation (`validation_encryption.go`), messages in its
    /// field-path form.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.resources.is_empty() {
            return Err(bad("resources: Required value: EncryptionConfiguration.Resources must contain at least one resource"));
        }
        for (i, rc) in self.resources.iter().enumerate() {
            if rc.resources.is_empty() {
                return Err(bad(format!(
                    "resources[{i}].resources: Required value: resource must be specified"
                )));
            }
            for (j, r) in rc.resources.iter().enumerate() {
                if r.is_empty() || r.to_lowercase() != *r {
                    return Err(bad(format!(
                        "resources[{i}].resources[{j}]: Invalid value: {r:?}: resource name must be lowercase and not empty"
                    )));
                }
            }
            if rc.providers.is_empty() {
                return Err(bad(format!(
                    "resources[{i}].providers: Required value: provider must be specified"
                )));
            }
            for (j, p) in rc.providers.iter().enumerate() {
                let kinds = [
                    p.aesgcm.is_some(),
                    p.aescbc.is_some(),
                    p.secretbox.is_some(),
                    p.identity.is_some(),
                    p.kms.is_some(),
                ]
                .iter()
                .filter(|b| **b)
                .count();
                if kinds != 1 {
                    return Err(bad(format!(
                        "resources[{i}].providers[{j}]: Invalid value: {}: more than one provider specified in a single element, should split into different list elements",
                        if kinds == 0 { "none" } else { "several" }
                    )));
                }
            }
        }
        Ok(())
    }

    /// The transformers, one per resource pattern in the order written.
    pub fn transformers(&self) -> Result<Vec<(String, Arc<PrefixTransformers>)>, ConfigError> {
        let mut out = Vec::new();
        for rc in &self.resources {
            let mut list = Vec::new();
            for p in &rc.providers {
                list.push(provider(p)?);
            }
            let t = Arc::new(PrefixTransformers::new("no matching prefix found", list));
            for r in &rc.resources {
                out.push((r.clone(), t.clone()));
            }
        }
        Ok(out)
    }
}

fn provider(p: &ProviderConfiguration) -> Result<PrefixTransformer, ConfigError> {
    if let Some(c) = &p.aesgcm {
        return aes(c, AESGCM_PREFIX, |k| Box::new(AesGcm::new(k)));
    }
    if let Some(c) = &p.aescbc {
        return aes(c, AESCBC_PREFIX, |k| Box::new(AesCbc::new(k)));
    }
    if let Some(c) = &p.secretbox {
        check_keys(c, "secretbox")?;
        let mut keys = Vec::new();
        for k in &c.keys {
            let secret = decode_secret(k)?;
            let key: [u8; 32] = secret.as_slice().try_into().map_err(|_| {
                bad(format!(
                    "expected key size 32 for secretbox provider, got {}",
                    secret.len()
                ))
            })?;
            keys.push(PrefixTransformer {
                prefix: format!("{}:", k.name).into_bytes(),
                transformer: Box::new(Secretbox::new(&key)),
            });
        }
        return Ok(PrefixTransformer {
            prefix: SECRETBOX_PREFIX.as_bytes().to_vec(),
            transformer: Box::new(PrefixTransformers::new(
                "no matching key was found for the provided Secretbox transformer",
                keys,
            )),
        });
    }
    if p.identity.is_some() {
        return Ok(PrefixTransformer {
            prefix: Vec::new(),
            transformer: Box::new(Identity),
        });
    }
    Err(bad(
        "kms providers are not supported by skiff: use aesgcm, aescbc, secretbox or identity",
    ))
}

fn check_keys(c: &KeysConfiguration, kind: &str) -> Result<(), ConfigError> {
    if c.keys.is_empty() {
        return Err(bad(format!("{kind} provider has no valid keys")));
    }
    for k in &c.keys {
        if k.name.is_empty() {
            return Err(bad("key with invalid name provided"));
        }
        if k.secret.is_empty() {
            return Err(bad(format!("key {} has no provided secret", k.name)));
        }
    }
    Ok(())
}

fn decode_secret(k: &Key) -> Result<Vec<u8>, ConfigError> {
    base64::engine::general_purpose::STANDARD
        .decode(k.secret.trim())
        .map_err(|e| {
            bad(format!(
                "could not obtain secret for named key {}: {e}",
                k.name
            ))
        })
}

fn aes(
    c: &KeysConfiguration,
    prefix: &str,
    make: fn(AesKey) -> Box<dyn Transformer>,
) -> Result<PrefixTransformer, ConfigError> {
    check_keys(c, "aes")?;
    let mut keys = Vec::new();
    for k in &c.keys {
        let key = AesKey::new(&decode_secret(k)?).map_err(|e| {
            bad(format!(
                "error while creating cipher for named key {}: {e}",
                k.name
            ))
        })?;
        keys.push(PrefixTransformer {
            prefix: format!("{}:", k.name).into_bytes(),
            transformer: make(key),
        });
    }
    Ok(PrefixTransformer {
        prefix: prefix.as_bytes().to_vec(),
        transformer: Box::new(PrefixTransformers::new(
            "no matching key was found for the provided AES transformer",
            keys,
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPSTREAM: &str = r#"
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources:
      - secrets
      - configmaps
    providers:
      - aescbc:
          keys:
            - name: key1
              secret: c2VjcmV0IGlzIHNlY3VyZQ==
            - name: key2
              secret: dGhpcyBpcyBwYXNzd29yZA==
      - secretbox:
          keys:
            - name: key1
              secret: YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY=
      - aesgcm:
          keys:
            - name: key1
              secret: c2VjcmV0IGlzIHNlY3VyZQ==
      - identity: {}
  - resources:
      - '*.apps'
    providers:
      - identity: {}
"#;

    #[test]
    fn reads_upstream_file() {
        // The example of upstream's "Encrypting Confidential Data at Rest" page, unchanged.
        let c = EncryptionConfiguration::parse(UPSTREAM).unwrap();
        let t = c.transformers().unwrap();
        let names: Vec<&str> = t.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["secrets", "configmaps", "*.apps"]);
        let (_, secrets) = &t[0];
        assert_eq!(secrets.write_prefix(), AESCBC_PREFIX.as_bytes());
        let sealed = secrets
            .transform_to_storage(b"{}", b"/registry/secrets/a/b")
            .unwrap();
        assert!(sealed.starts_with(b"k8s:enc:aescbc:v1:key1:"));
    }

    #[test]
    fn bad_configurations() {
        let cases = [
            ("kind: Foo\napiVersion: v1\n", "got unexpected config type: v1, Kind=Foo"),
            (
                "kind: EncryptionConfiguration\napiVersion: apiserver.config.k8s.io/v1\n",
                "resources: Required value: EncryptionConfiguration.Resources must contain at least one resource",
            ),
            (
                "kind: EncryptionConfiguration\napiVersion: apiserver.config.k8s.io/v1\nresources: [{resources: [secrets], providers: [{secretbox: {keys: [{name: k, secret: YWJj}]}}]}]\n",
                "expected key size 32 for secretbox provider, got 3",
            ),
            (
                "kind: EncryptionConfiguration\napiVersion: apiserver.config.k8s.io/v1\nresources: [{resources: [secrets], providers: [{aesgcm: {keys: [{name: k, secret: YWJj}]}}]}]\n",
                "error while creating cipher for named key k: crypto/aes: invalid key size 3",
            ),
            (
                "kind: EncryptionConfiguration\napiVersion: apiserver.config.k8s.io/v1\nresources: [{resources: [secrets], providers: [{aesgcm: {keys: [{name: k, secret: '!!'}]}}]}]\n",
                "could not obtain secret for named key k: Invalid symbol 33, offset 0.",
            ),
            (
                "kind: EncryptionConfiguration\napiVersion: apiserver.config.k8s.io/v1\nresources: [{resources: [secrets], providers: [{aescbc: {keys: []}}]}]\n",
                "aes provider has no valid keys",
            ),
            (
                "kind: EncryptionConfiguration\napiVersion: apiserver.config.k8s.io/v1\nresources: [{resources: [secrets], providers: [{aescbc: {keys: [{name: '', secret: x}]}}]}]\n",
                "key with invalid name provided",
            ),
            (
                "kind: EncryptionConfiguration\napiVersion: apiserver.config.k8s.io/v1\nresources: [{resources: [secrets], providers: [{identity: {}, aescbc: {keys: []}}]}]\n",
                "resources[0].providers[0]: Invalid value: several: more than one provider specified in a single element, should split into different list elements",
            ),
        ];
        for (file, want) in cases {
            let got =
                EncryptionConfiguration::parse(file).and_then(|c| c.transformers().map(|_| c));
            assert_eq!(got.unwrap_err().0, want, "{file}");
        }
    }
}
