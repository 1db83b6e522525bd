//! Image reference normalization, so `busybox`, `library/busybox:latest` and
//! `docker.io/library/busybox:latest` name the same image, as in Docker and the kubelet;
//! and [`Reference`], the parsed form a registry pull needs.

use std::fmt;

/// The registry Docker Hub names (`busybox`, `me/app`) belong to.
pub const DOCKER_HUB: &str = "docker.io";

/// Where Docker Hub's registry API actually answers (`docker.io` has no API of its own).
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A reference that cannot name an image in a registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid reference format {reference:?}: {why}")]
pub struct ReferenceError {
    /// The reference as given.
    pub reference: String,
    /// Which rule it breaks.
    pub why: &'static str,
}

/// A parsed, normalized image reference: what to ask which registry for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry host (and port), `docker.io` for Docker Hub.
    pub registry: String,
    /// Repository path, `library/busybox` for Docker Hub's official images.
    pub repository: String,
    /// Tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// `sha256:<hex>` when the reference pins a manifest digest.
    pub digest: Option<String>,
}

/// Splits a reference into (registry, repository path, tag, digest) by Docker's rules,
/// without validating the parts.
fn split(reference: &str) -> (String, String, Option<String>, Option<String>) {
    let (name, digest) = match reference.split_once('@') {
        Some((name, digest)) => (name, Some(digest.to_string())),
        None => (reference, None),
    };
    // A ':' after the last '/' separates the tag; one before it is a registry port.
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (
            &name[..last_slash + i],
            Some(name[last_slash + i + 1..].to_string()),
        ),
        None => (name, None),
    };
    let (registry, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DOCKER_HUB.to_string(), name.to_string()),
    };
    let path = if registry == DOCKER_HUB && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    let tag = if tag.is_none() && digest.is_none() {
        Some("latest".to_string())
    } else {
        tag
    };
    (registry, path, tag, digest)
}

/// Normalizes an image reference to `registry/repository:tag` (or `@digest`).
///
/// Rules follow Docker's: the first component is a registry only if it contains `.` or `:`
/// or is `localhost`; Docker Hub names without a namespace go under `library/`; a missing tag
/// means `latest`. Ids (`sha256:...`) are returned unchanged.
pub fn normalize_reference(reference: &str) -> String {
    let reference = reference.trim();
    if reference.starts_with("sha256:") {
        return reference.to_string();
    }
    let (registry, path, tag, digest) = split(reference);
    match digest {
        Some(d) => format!("{registry}/{path}@{d}"),
        None => format!("{registry}/{path}:{}", tag.unwrap_or_default()),
    }
}

impl Reference {
    /// Parses and validates a reference as Docker does (`busybox` =
    /// `docker.io/library/busybox:latest`), so a bad one fails before any request is made.
    pub fn parse(reference: &str) -> Result<Self, ReferenceError> {
        let err = |why| ReferenceError {
            reference: reference.to_string(),
            why,
        };
        let trimmed = reference.trim();
        if trimmed.is_empty() {
            return Err(err("empty"));
        }
        if trimmed.starts_with("sha256:") {
            return Err(err("an image id names no repository to pull from"));
        }
        let (registry, repository, tag, digest) = split(trimmed);
        if registry.is_empty() || registry.contains(['/', '@', ' ']) {
            return Err(err("bad registry host"));
        }
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
                && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
        };
        if !repository.split('/').all(component_ok) {
            return Err(err(
                "repository must be lowercase letters, digits and separators",
            ));
        }
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
                && !t.starts_with(['.', '-']);
            if !ok {
                return Err(err("bad tag"));
            }
        }
        if let Some(d) = &digest {
            if !is_sha256_digest(d) {
                return Err(err("digest must be sha256:<64 hex digits>"));
            }
        }
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// What to ask the registry's manifest endpoint for: the digest if pinned, else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// `host[:port]` of the registry API (Docker Hub's API lives on another host).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// `registry/repository@digest`: the repo digest that names exactly what was pulled,
    /// shown as the container's `imageID` as containerd reports it.
    pub fn with_digest(&self, digest: &str) -> String {
        format!("{}/{}@{digest}", self.registry, self.repository)
    }
}

impl fmt::Display for Reference {
    /// The normalized form, the key of the store's index.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        match (&self.tag, &self.digest) {
            (_, Some(d)) => write!(f, "@{d}"),
            (Some(t), None) => write!(f, ":{t}"),
            (None, None) => Ok(()),
        }
    }
}

/// Whether `s` is `sha256:` and 64 lowercase hex digits (the only algorithm pulled).
pub fn is_sha256_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::normalize_reference as n;
    use super::*;

    #[test]
    fn short_names_go_to_docker_hub_library_with_latest_tag() {
        assert_eq!(n("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(n("collector:v2"), "docker.io/library/collector:v2");
        assert_eq!(n("me/app:1"), "docker.io/me/app:1");
    }

    #[test]
    fn registries_with_ports_keep_their_tags_apart() {
        assert_eq!(n("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(n("reg.io:443/a/b:v1"), "reg.io:443/a/b:v1");
        assert_eq!(n("docker.io/library/x:y"), "docker.io/library/x:y");
    }

    #[test]
    fn digests_and_ids_are_kept() {
        assert_eq!(n("app@sha256:ab"), "docker.io/library/app@sha256:ab");
        assert_eq!(n("sha256:abcd"), "sha256:abcd");
    }

    #[test]
    fn parsed_references_name_registry_repository_and_tag() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.repository, "library/busybox");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");

        let r = Reference::parse("127.0.0.1:5000/team/app:v1").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.manifest_ref(), "v1");
        assert_eq!(r.api_host(), "127.0.0.1:5000");
        assert_eq!(
            r.with_digest("sha256:00"),
            "127.0.0.1:5000/team/app@sha256:00"
        );
    }

    #[test]
    fn a_pinned_digest_is_what_the_manifest_is_asked_for() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("quay.io/x/y:1.0@{d}")).unwrap();
        assert_eq!(r.manifest_ref(), d);
        assert_eq!(r.to_string(), format!("quay.io/x/y@{d}"));
        assert_eq!(n(&format!("localhost/y@{d}")), format!("localhost/y@{d}"));
    }

    #[test]
    fn malformed_references_are_rejected_before_any_request() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox:-x",
            "reg.io/a//b",
            "busybox@sha256:xyz",
            "busybox@md5:00",
            "sha256:abcdef",
            "a_/b",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
