//! Image reference normalization, so `busybox`, `library/busybox:latest` and
//! `docker.io/library/busybox:latest` name the same image, as in Docker and the kubelet.

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
    let (name, suffix) = match reference.split_once('@') {
        Some((name, digest)) => (name, format!("@{digest}")),
        None => {
            // A ':' after the last '/' separates the tag; one before it is a registry port.
            let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
            match reference[last_slash..].rfind(':') {
                Some(i) => (
                    &reference[..last_slash + i],
                    format!(":{}", &reference[last_slash + i + 1..]),
                ),
                None => (reference, ":latest".to_string()),
            }
        }
    };
    let (registry, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => ("docker.io".to_string(), name.to_string()),
    };
    let path = if registry == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    format!("{registry}/{path}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::normalize_reference as n;

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
}
