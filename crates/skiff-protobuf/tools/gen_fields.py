#!/usr/bin/env python3
"""Regenerates src/fields.txt: what the Go types add to the .proto schema.

The .proto files give wire structure only. The Kubernetes JSON form also depends on each
Go struct field's `json` tag (name, omitempty, ",inline") and on whether the Go field is a
pointer (a pointer scalar keeps its zero value; a plain one is emitted on the wire even
when zero, and JSON's omitempty drops it). This script reads those facts from the Go
struct tags of the upstream API packages and writes one line per field that departs from
the defaults (JSON name == proto name, omitempty, not a pointer, not inline):

    <proto message full name> <field number> <json name or '-'> <flags>

flags: 'p' pointer, 'k' no omitempty (zero kept), 'i' inlined into the parent object;
's' with field number 0: the message is a Go named slice, whose JSON form is a bare array.

Usage (the three repositories are git clones of kubernetes/api, kubernetes/apimachinery and
kubernetes/apiextensions-apiserver; TAG is the release the vendored .proto files came from):

    tools/gen_fields.py TAG API_REPO APIMACHINERY_REPO APIEXTENSIONS_REPO > src/fields.txt
"""

import os
import re
import subprocess
import sys

PROTO_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "proto", "k8s.io")

STRUCT_RE = re.compile(r"^type (\w+) struct \{\s*$")
TAG_RE = re.compile(r'(\w+):"([^"]*)"')


def git(repo, *args):
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, text=True).stdout


def packages():
    """Yields (repo key, go dir, proto package) for every vendored generated.proto."""
    for dirpath, _, files in os.walk(PROTO_ROOT):
        if "generated.proto" not in files:
            continue
        with open(os.path.join(dirpath, "generated.proto")) as f:
            package = re.search(r"^package ([\w.]+);", f.read(), re.M).group(1)
        rel = os.path.relpath(dirpath, PROTO_ROOT)
        repo, _, godir = rel.partition(os.sep)
        yield repo, godir, package


def fields_of(source):
    """Yields (struct, go field name, go type, tags) for each tagged struct field."""
    struct = None
    for line in source.splitlines():
        if struct is None:
            m = STRUCT_RE.match(line)
            if m:
                struct = m.group(1)
            continue
        if line.startswith("}"):
            struct = None
            continue
        if line.lstrip().startswith("//"):
            continue
        code = line
        if "`" not in code:
            continue
        left, _, rest = code.partition("`")
        tags = dict(TAG_RE.findall(rest.rsplit("`", 1)[0]))
        tokens = left.split()
        if not tokens:
            continue
        if len(tokens) == 1:
            name, gotype = tokens[0].split(".")[-1].lstrip("*"), tokens[0]
        else:
            name, gotype = tokens[0], " ".join(tokens[1:])
        yield struct, name, gotype, tags


def proto_source(repo, godir):
    with open(os.path.join(PROTO_ROOT, repo, godir, "generated.proto")) as f:
        return f.read()


def main():
    tag, api, apimachinery, apiextensions = sys.argv[1:5]
    repos = {"api": api, "apimachinery": apimachinery, "apiextensions-apiserver": apiextensions}
    out = []
    for repo, godir, package in sorted(packages()):
        path = repos[repo]
        names = git(path, "ls-tree", "--name-only", f"{tag}:{godir}").split()
        for name in sorted(names):
            if not name.endswith(".go") or name.endswith("_test.go") or name.startswith("zz_") or ".pb." in name:
                continue
            source = git(path, "show", f"{tag}:{godir}/{name}")
            # A Go named slice becomes a message with `repeated items = 1`, but its JSON
            # form is the bare array; field number 0 marks the message itself.
            for slice_type in re.findall(r"^type (\w+) \[\]", source, re.M):
                if re.search(rf"^message {slice_type} {{", proto_source(repo, godir), re.M):
                    out.append(f"{package}.{slice_type} 0 - s")
            for struct, _, gotype, tags in fields_of(source):
                proto = tags.get("protobuf")
                if not proto or proto == "-":
                    continue
                parts = proto.split(",")
                number = parts[1]
                proto_name = next((p[5:] for p in parts if p.startswith("name=")), None)
                json_tag = tags.get("json", "")
                json_name, *opts = json_tag.split(",")
                flags = ""
                if gotype.startswith("*"):
                    flags += "p"
                if "omitempty" not in opts:
                    flags += "k"
                if "inline" in opts:
                    flags += "i"
                    json_name = "-"
                if json_name == "":
                    json_name = proto_name
                if json_name == proto_name:
                    if not flags:
                        continue
                    json_name = "-"
                out.append(f"{package}.{struct} {number} {json_name} {flags or '-'}")
    print(f"# generated by tools/gen_fields.py from Go struct tags at {tag}; do not edit")
    for line in sorted(set(out)):
        print(line)


if __name__ == "__main__":
    main()
