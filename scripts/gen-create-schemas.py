#!/usr/bin/env python3
"""Generate spec/create-schemas.json: one validation schema per POST body.

Merges the public docs spec (spec/openapi.json, deprecated fields stripped)
with the Python SDK 0.90.0 request schemas (spec/sdk-0.90.0-schemas.json,
which still has the deprecated fields and four newer endpoints) into the small
JSON-Schema subset that src/mock/validate.rs understands:

    type, nullable, enum, properties, required, items,
    minLength, maxLength, minimum, maximum, minItems, maxItems, pattern

Merge rules: properties = union; type and required from the spec where it has
the node, else from the SDK; enum = spec values then SDK-only values;
constraints from the spec only (the SDK has none); nullable if either source
allows null (the SDK types every optional field as `X | None`).

Run from anywhere: python3 scripts/gen-create-schemas.py
"""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "spec" / "openapi.json"
SDK = ROOT / "spec" / "sdk-0.90.0-schemas.json"
OUT = ROOT / "spec" / "create-schemas.json"

CONSTRAINTS = ("minLength", "maxLength", "minimum", "maximum", "minItems", "maxItems")
# The validator has no regex engine; it only understands `^[class]+$`.
SUPPORTED_PATTERN = re.compile(r"^\^\[[^\]]+\]\+\$$")
# Keywords that carry no validation the mock performs (docs, or rules the
# mock deliberately leaves to the server: formats, multipleOf steps).
IGNORED = {
    "description", "example", "default", "title", "format", "multipleOf",
    "additionalProperties", "$defs",
}


def warn(msg):
    print(f"gen-create-schemas: {msg}", file=sys.stderr)


def sdk_node(node, defs):
    """Resolve $ref and unwrap pydantic's `anyOf: [X, null]` -> (X, nullable)."""
    if node is None:
        return None, False
    if "$ref" in node:
        return sdk_node(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in node:
        alts = [a for a in node["anyOf"] if a.get("type") != "null"]
        if len(alts) != 1:
            sys.exit(f"unsupported SDK anyOf: {json.dumps(node)[:200]}")
        inner, _ = sdk_node(alts[0], defs)
        return inner, True
    return node, False


def check_keywords(node, where, source):
    allowed = set(CONSTRAINTS) | {
        "type", "nullable", "enum", "properties", "required", "items", "pattern",
    } | IGNORED
    unknown = set(node) - allowed
    if unknown:
        # Fail loudly: a new keyword (anyOf, oneOf, ...) must not be dropped silently.
        sys.exit(f"{source} {where}: unsupported keywords {sorted(unknown)}")


def merge(spec, sdk, defs, where):
    sdk, sdk_nullable = sdk_node(sdk, defs)
    if spec is not None:
        check_keywords(spec, where, "spec")
    if sdk is not None:
        check_keywords(sdk, where, "sdk")
    out = {}

    spec_type = (spec or {}).get("type")
    sdk_type = (sdk or {}).get("type")
    if spec_type and sdk_type and spec_type != sdk_type:
        warn(f"{where}: spec type {spec_type} != SDK type {sdk_type}; using spec")
    typ = spec_type or sdk_type
    if typ:
        out["type"] = typ
    if (spec or {}).get("nullable") or sdk_nullable:
        out["nullable"] = True

    enum = list((spec or {}).get("enum") or [])
    seen = {json.dumps(v) for v in enum}
    for v in (sdk or {}).get("enum") or []:
        if json.dumps(v) not in seen:
            seen.add(json.dumps(v))
            enum.append(v)
    if enum:
        out["enum"] = enum

    for key in CONSTRAINTS:
        if spec is not None and key in spec:
            out[key] = spec[key]
    pattern = (spec or {}).get("pattern")
    if pattern is not None:
        if not SUPPORTED_PATTERN.match(pattern):
            sys.exit(f"{where}: pattern {pattern!r} is not of the form ^[class]+$")
        out["pattern"] = pattern

    if typ == "object":
        spec_props = (spec or {}).get("properties", {})
        sdk_props = (sdk or {}).get("properties", {})
        out["properties"] = {
            k: merge(spec_props.get(k), sdk_props.get(k), defs, f"{where}.{k}")
            for k in sorted(set(spec_props) | set(sdk_props))
        }
        # Order kept: the validator reports the first missing field in this order.
        required = (spec if spec is not None else sdk).get("required", [])
        if spec is not None and sdk is not None:
            extra = set(sdk.get("required", [])) - set(required)
            if extra:
                warn(f"{where}: SDK also requires {sorted(extra)}; using spec")
        if required:
            out["required"] = list(required)
    if typ == "array":
        out["items"] = merge((spec or {}).get("items"), (sdk or {}).get("items"), defs, f"{where}[]")
    return out


def body_schema(op):
    return op["requestBody"]["content"]["application/json"]["schema"]


def sdk_key(path):
    """/v1/files/upload-urls -> _SerializerV1FilesUploadUrlsCreateBody"""
    words = re.split(r"[-/]", path.removeprefix("/v1/"))
    return "_SerializerV1" + "".join(w.capitalize() for w in words) + "CreateBody"


def path_of(key):
    """_SerializerV1AiUgcAdCreateBody -> /v1/ai-ugc-ad (SDK-only endpoints)."""
    camel = key.removeprefix("_SerializerV1").removesuffix("CreateBody")
    return "/v1/" + re.sub(r"(?<!^)([A-Z])", r"-\1", camel).lower()


def main():
    spec = json.loads(SPEC.read_text())
    sdk = json.loads(SDK.read_text())["schemas"]
    bodies = {k: v for k, v in sdk.items() if k.startswith("_Serializer") and k.endswith("CreateBody")}

    out = {}
    for path, item in spec["paths"].items():
        if "post" not in item:
            continue
        key = sdk_key(path)
        body = bodies.pop(key, None)
        if body is None:
            warn(f"{path}: no SDK body {key}")
        out[path] = merge(body_schema(item["post"]), body, (body or {}).get("$defs", {}), path)
    for key, body in bodies.items():  # endpoints newer than the docs spec
        path = path_of(key)
        out[path] = merge(None, body, body.get("$defs", {}), path)

    text = json.dumps(out, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}: {len(out)} endpoints, {len(text.encode())} bytes")


if __name__ == "__main__":
    main()
