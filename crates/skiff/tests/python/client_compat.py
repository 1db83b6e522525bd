"""The Python `kubernetes` client against skiff: dry runs and server-side apply.

Run by crates/skiff/tests/clients.rs as `python client_compat.py KUBECONFIG NAMESPACE`.
Prints one line per check, `ok NAME` or `FAIL NAME: why`, and exits 1 if any failed, so the
Rust test can report every failure at once.
"""

import sys

from kubernetes import client, config
from kubernetes.client.rest import ApiException

kubeconfig, ns = sys.argv[1], sys.argv[2]
config.load_kube_config(config_file=kubeconfig)
core = client.CoreV1Api()
failed = []


def check(name):
    def run(fn):
        try:
            fn()
            print(f"ok {name}")
        except Exception as e:  # every failure is reported, the next check still runs
            body = getattr(e, "body", None)
            detail = f"{type(e).__name__}: {e}" if body is None else f"HTTP {e.status}: {body}"
            print(f"FAIL {name}: {detail}")
            failed.append(name)
        return fn

    return run


def absent(read):
    try:
        read()
    except ApiException as e:
        if e.status == 404:
            return True
        raise
    return False


def configmap(name, data):
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data=data)


core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))


@check("create_dry_run_all_creates_nothing")
def _():
    got = core.create_namespaced_config_map(ns, configmap("dry", {"a": "1"}), dry_run="All")
    assert got.metadata.name == "dry", got.metadata
    assert got.data == {"a": "1"}, got.data
    assert absent(lambda: core.read_namespaced_config_map("dry", ns)), "dry-run create persisted"


@check("delete_with_body_dry_run_all_deletes_nothing")
def _():
    core.create_namespaced_config_map(ns, configmap("keep", {"a": "1"}))
    core.delete_namespaced_config_map(
        "keep", ns, body=client.V1DeleteOptions(dry_run=["All"])
    )
    got = core.read_namespaced_config_map("keep", ns)
    assert got.metadata.deletion_timestamp is None, got.metadata


@check("server_side_apply_with_apply_patch_content_type_and_field_manager")
def _():
    def apply(data, manager="python"):
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "ssa", "namespace": ns},
            "data": data,
        }
        return core.patch_namespaced_config_map(
            "ssa",
            ns,
            body,
            field_manager=manager,
            _content_type="application/apply-patch+yaml",
        )

    got = apply({"a": "1", "b": "2"})
    assert got.data == {"a": "1", "b": "2"}, got.data
    entries = [m for m in got.metadata.managed_fields or [] if m.manager == "python"]
    assert entries and entries[0].operation == "Apply", got.metadata.managed_fields
    fields = entries[0].fields_v1 or {}
    assert "f:a" in fields.get("f:data", {}), fields
    # Applying without `b` drops it: this manager owned it and nobody else does.
    got = apply({"a": "2"})
    assert got.data == {"a": "2"}, got.data
    # A second manager changing `a` conflicts (409) unless forced.
    try:
        apply({"a": "3"}, manager="other")
        raise AssertionError("apply by a second manager changing an owned field did not conflict")
    except ApiException as e:
        assert e.status == 409, f"HTTP {e.status}: {e.body}"


if failed:
    sys.exit(1)
