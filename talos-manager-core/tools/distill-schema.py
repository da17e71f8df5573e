#!/usr/bin/env python3
"""Distils Talos's JSON schemas of the machine configuration into the compact text format read
by `talos-manager-core/src/talos/schema/mod.rs`.

Usage: distill-schema.py config-v1.10.schema.json config-v1.12.schema.json config-v1.13.schema.json \
    config-v1.14.schema.json > schema.txt

The output keeps each document's fields in the order Talos declares them (which is the order
Talos emits them in). Fields of the newer schema are inserted after their predecessor there,
so fields that 1.12 only stopped documenting (deprecated but still accepted) keep their place.
"""
import json
import sys

SKIP = {"title", "description", "markdownDescription", "x-intellij-html-description", "examples", "default"}
synth = {}


def ref_name(ref):
    return ref.split("/")[-1]


def type_of(prop, owner, field):
    if "$ref" in prop:
        return "ref:" + ref_name(prop["$ref"])
    t = prop.get("type")
    if t == "string":
        return "str"
    if t == "boolean":
        return "bool"
    if t == "integer":
        return "int"
    if t == "number":
        return "num"
    if t == "array":
        return "list:" + type_of(prop.get("items", {}), owner, field)
    if t == "object":
        if "properties" in prop:
            name = "inline." + "_".join(sorted(prop["properties"]))
            synth[name] = prop
            return "ref:" + name
        if "patternProperties" in prop:
            (inner,) = prop["patternProperties"].values()
            return "map:" + type_of(inner, owner, field)
        return "any"
    if "oneOf" in prop:
        kinds = sorted(type_of(p, owner, field) for p in prop["oneOf"])
        if kinds == ["int", "str"]:
            return "intstr"
        return "any"
    if "enum" in prop:
        values = prop["enum"]
        if all(isinstance(v, bool) for v in values):
            return "bool"
        if all(isinstance(v, int) for v in values):
            return "int"
        return "str"
    return "any"


def props(defn):
    return list(defn.get("properties", {}).items())


# Fields the schemas leave out although Talos still decodes (and emits) them, and fields whose
# schema type is wrong: (document, field, type, the field it follows or None for first).
AMEND = [
    ("v1alpha1.Config", "persist", {"type": "boolean"}, "debug"),
    ("v1alpha1.MachineConfig", "acceptedCAs", {"type": "array", "items": {"type": "object", "properties": {"crt": {"type": "string"}}}}, "ca"),
    ("v1alpha1.ClusterConfig", "acceptedCAs", {"type": "array", "items": {"type": "object", "properties": {"crt": {"type": "string"}}}}, "ca"),
    ("v1alpha1.Device", "cidr", {"type": "string"}, "addresses"),
    ("v1alpha1.Vlan", "cidr", {"type": "string"}, "addresses"),
    # Deprecated but still decoded by Talos 1.10 (and emitted in this order).
    ("v1alpha1.InstallConfig", "extensions", {"type": "array", "items": {"type": "object", "properties": {"image": {"type": "string"}}}}, "image"),
    ("v1alpha1.InstallConfig", "bootloader", {"type": "boolean"}, "extensions"),
    ("v1alpha1.MachineConfig", "disks", {"type": "array", "items": {"type": "object", "properties": {
        "device": {"type": "string"},
        "partitions": {"type": "array", "items": {"type": "object", "properties": {
            "size": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
            "mountpoint": {"type": "string"},
        }}},
    }}}, "network"),
]


def amend(defs):
    for name, field, prop, after in AMEND:
        fields = [(f, p) for f, p in defs[name] if f != field]
        idx = 0 if after is None else [f for f, _ in fields].index(after) + 1
        fields.insert(idx, (field, prop))
        defs[name] = fields


def merge(old, new):
    names = [n for n, _ in old]
    merged = list(old)
    by_name = dict(old)
    prev = None
    for name, prop in new:
        if name in by_name:
            prev = name
            continue
        idx = names.index(prev) + 1 if prev in names else len(names) if prev else 0
        names.insert(idx, name)
        merged.insert(idx, (name, prop))
        by_name[name] = prop
        prev = name
    return merged


def main():
    schemas = [json.load(open(p))["$defs"] for p in sys.argv[1:]]
    defs = {}
    for schema in schemas:
        for name, defn in schema.items():
            defs[name] = merge(defs[name], props(defn)) if name in defs else props(defn)
    amend(defs)
    kinds = {}
    for schema in schemas:
        for name, defn in schema.items():
            kind = defn.get("properties", {}).get("kind", {}).get("enum")
            if kind:
                kinds[name] = kind[0]
    out = [
        "# Distilled by tools/distill-schema.py from Talos's pkg/machinery/config/schemas/",
        "# config.schema.json (tags v1.10.9, v1.12.11, v1.13.9 and v1.14.1, siderolabs/talos, MPL-2.0;",
        "# this file stays under the MPL-2.0). One `def <name> [<kind>]` per struct, then",
        "# `  <field> <type>`.",
    ]
    for name in sorted(defs):
        out.append("def " + name + (" " + kinds[name] if name in kinds else ""))
        for field, prop in defs[name]:
            out.append("  " + field + " " + type_of(prop, name, field))
    while synth:
        name, prop = synth.popitem()
        out.append("def " + name)
        for field, p in prop["properties"].items():
            out.append("  " + field + " " + type_of(p, name, field))
    print("\n".join(out))


main()
