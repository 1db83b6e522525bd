//! Node agent: runs the Pods bound to this node as OCI containers (images, pod networking, volumes, probes, logs).
