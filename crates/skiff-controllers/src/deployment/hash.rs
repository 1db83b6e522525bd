//! The pod-template-hash: a stable, DNS-safe hash of a Deployment's pod template.

use k8s_openapi::api::core::v1::PodTemplateSpec;

/// The label that ties a ReplicaSet and its pods to one template of a Deployment.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// FNV-32a over the template's JSON and the collision count, rendered as upstream's
/// `rand.SafeEncodeString(fmt.Sprint(hash))`. Upstream hashes Go's printed form of the
/// struct instead of JSON, so the values differ from a real cluster's, but they are just as
/// stable: the same template always yields the same ReplicaSet name.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    let mut write = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u32::from(*b);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    write(&serde_json::to_vec(template).unwrap_or_default());
    if let Some(count) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(count as u32).to_le_bytes());
        write(&bytes);
    }
    safe_encode(&hash.to_string())
}

/// Upstream's `rand.SafeEncodeString`: maps each byte onto consonants and digits so the
/// result never spells words and is valid in a DNS label.
pub(crate) fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// Whether two templates are equal once the pod-template-hash label is ignored (upstream
/// `EqualIgnoreHash`): how the ReplicaSet of the current template is found, also after
/// `kubectl rollout undo` copied an old template back.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    fn strip(t: &PodTemplateSpec) -> serde_json::Value {
        let mut t = t.clone();
        if let Some(meta) = t.metadata.as_mut() {
            if let Some(labels) = meta.labels.as_mut() {
                labels.remove(POD_TEMPLATE_HASH);
                if labels.is_empty() {
                    meta.labels = None;
                }
            }
        }
        serde_json::to_value(t).unwrap_or_default()
    }
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn template(image_label: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), image_label.to_string())].into()),
                ..Default::default()
            }),
            spec: None,
        }
    }

    #[test]
    fn hash_is_stable_and_dns_safe() {
        let h = template_hash(&template("a"), None);
        assert_eq!(h, template_hash(&template("a"), None));
        assert_ne!(h, template_hash(&template("b"), None));
        assert_ne!(h, template_hash(&template("a"), Some(1)));
        assert!(h
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    }

    #[test]
    fn safe_encode_matches_upstream_alphabet() {
        // Upstream: SafeEncodeString("0123456789") maps bytes 48..57 modulo 27.
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }

    #[test]
    fn templates_equal_ignoring_the_hash_label() {
        let mut hashed = template("a");
        if let Some(l) = hashed.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            l.insert(POD_TEMPLATE_HASH.into(), "xyz".into());
        }
        assert!(equal_ignore_hash(&hashed, &template("a")));
        assert!(!equal_ignore_hash(&hashed, &template("b")));
    }
}
