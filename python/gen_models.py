"""Generates ``hdi/models.py`` from the control plane's OpenAPI document (``openapi/hdi.json``).

Every component schema becomes a ``TypedDict`` (optional members as ``NotRequired``), a string
enum a ``Literal`` alias, a ``oneOf`` a ``Union`` of its variants; every operation becomes an
entry of ``OPERATIONS`` (operation id -> method and path template), which the client builds its
requests from. Standard library only, so that ``cargo xtask codegen`` can run it with any
Python 3. The output is deterministic; a test in ``xtask/src/codegen.rs`` regenerates it and
fails when the committed module differs.

Usage: ``python3 python/gen_models.py [OPENAPI_JSON] [OUTPUT | -]`` (defaults: the repository's
``openapi/hdi.json`` and ``python/hdi/models.py``; ``-`` writes to standard output).
"""

from __future__ import annotations

import json
import keyword
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SPEC = HERE.parent / "openapi" / "hdi.json"
DEFAULT_OUT = HERE / "hdi" / "models.py"

HEADER = '''\
"""Typed models of the hdi REST API, generated from ``openapi/hdi.json`` by ``python/gen_models.py``.

Do not edit: run ``cargo xtask codegen`` (a test fails when this file is stale). Each component
schema is a ``TypedDict`` describing the JSON the API sends and takes; ``OPERATIONS`` maps each
operation id to its HTTP method and path template.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict, Union

__all__ = [
'''

SCALARS = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "null": "None"}


def ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def type_of(schema: dict, inline: list[tuple[str, dict]], hint: str) -> str:
    """The Python type of ``schema``; inline object variants are appended to ``inline``."""
    if "$ref" in schema:
        return ref_name(schema["$ref"])
    for key in ("oneOf", "anyOf"):
        if key in schema:
            variants = []
            for i, variant in enumerate(schema[key]):
                if variant.get("type") == "object" and "properties" in variant:
                    name = f"{hint}{variant_suffix(variant, i)}"
                    inline.append((name, variant))
                    variants.append(name)
                else:
                    variants.append(type_of(variant, inline, f"{hint}{i}"))
            return union(variants)
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return type_of(schema["allOf"][0], inline, hint)
    kind = schema.get("type")
    if isinstance(kind, list):
        return union([type_of({**schema, "type": k}, inline, hint) for k in kind])
    if kind == "string" and "enum" in schema:
        return "Literal[" + ", ".join(json.dumps(v) for v in schema["enum"]) + "]"
    if kind == "array":
        return f"list[{type_of(schema.get('items', {}), inline, hint + 'Item')}]"
    if kind == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            return f"dict[str, {type_of(extra, inline, hint + 'Value')}]"
        return "dict[str, Any]"
    if kind in SCALARS:
        return SCALARS[kind]
    return "Any"


def variant_suffix(variant: dict, index: int) -> str:
    """A name for an inline ``oneOf`` object: its single-valued enum member (``grant_type:
    password`` -> ``Password``), else its position."""
    for prop in variant.get("properties", {}).values():
        values = prop.get("enum")
        if prop.get("type") == "string" and isinstance(values, list) and len(values) == 1:
            return "".join(part.capitalize() for part in str(values[0]).split("_"))
    return str(index)


def union(types: list[str]) -> str:
    unique = list(dict.fromkeys(types))
    if len(unique) == 1:
        return unique[0]
    if "None" in unique:
        rest = [t for t in unique if t != "None"]
        return (rest[0] if len(rest) == 1 else "Union[" + ", ".join(rest) + "]") + " | None"
    return "Union[" + ", ".join(unique) + "]"


def docstring(text: str | None, indent: str) -> list[str]:
    if not text:
        return []
    text = text.strip().replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    lines = text.splitlines()
    if len(lines) == 1:
        return [f'{indent}"""{lines[0]}"""']
    return [f'{indent}"""{lines[0]}'] + [f"{indent}{l}" if l else "" for l in lines[1:]] + [f'{indent}"""']


def typed_dict(name: str, schema: dict, inline: list[tuple[str, dict]]) -> list[str]:
    out = [f"class {name}(TypedDict):"]
    out += docstring(schema.get("description"), "    ")
    required = set(schema.get("required", []))
    props = schema.get("properties", {})
    if not props:
        out.append("    pass")
    for prop in sorted(props):
        spec = props[prop]
        field = prop if prop.isidentifier() and not keyword.iskeyword(prop) else None
        if field is None:
            raise SystemExit(f"{name}.{prop}: not a Python identifier")
        hint = name + "".join(p.capitalize() for p in prop.split("_"))
        py = type_of(spec, inline, hint)
        if prop not in required:
            py = f"NotRequired[{py}]"
        out.append(f"    {field}: {py}")
        out += docstring(spec.get("description"), "    ")
    return out


def order_aliases(aliases: list[tuple[str, list[str]]]) -> list[list[str]]:
    """Alias blocks, each after the aliases its right-hand side names."""
    pending = dict(aliases)
    ordered: list[list[str]] = []
    while pending:
        ready = [
            name for name, block in pending.items()
            if not any(other != name and re.search(rf"\b{other}\b", block[0]) for other in pending)
        ]
        if not ready:
            raise SystemExit(f"aliases refer to each other in a cycle: {sorted(pending)}")
        for name in ready:
            ordered.append(pending.pop(name))
    return ordered


def generate(spec: dict) -> str:
    schemas = spec.get("components", {}).get("schemas", {})
    classes: list[list[str]] = []
    aliases: list[tuple[str, list[str]]] = []
    names: list[str] = []
    for name in sorted(schemas):
        schema = schemas[name]
        inline: list[tuple[str, dict]] = []
        if schema.get("type") == "object" and ("properties" in schema or "additionalProperties" not in schema):
            classes.append(typed_dict(name, schema, inline))
        else:
            block = [f"{name} = {type_of(schema, inline, name)}"]
            aliases.append((name, block + docstring(schema.get("description"), "")))
        names.append(name)
        done: set[str] = set()
        while inline:
            sub_name, sub = inline.pop(0)
            if sub_name not in done:
                done.add(sub_name)
                classes.append(typed_dict(sub_name, sub, inline))
                names.append(sub_name)
    # Classes first (their annotations are lazy strings), then the aliases, which are evaluated
    # when the module loads: each after the aliases it names.
    blocks = classes + order_aliases(aliases)
    operations = []
    for path in sorted(spec.get("paths", {})):
        for method, op in sorted(spec["paths"][path].items()):
            if isinstance(op, dict) and "operationId" in op:
                operations.append((op["operationId"], method.upper(), path))
    operations.sort()
    out = [HEADER.rstrip("\n")]
    out += [f"    {json.dumps(n)}," for n in sorted(names + ["OPERATIONS", "API_VERSION"])]
    out.append("]")
    out.append("")
    info = spec.get("info", {})
    out.append(f"API_VERSION = {json.dumps(str(info.get('version', '')))}")
    out.append('"""The ``info.version`` of the document these models were generated from."""')
    for block in blocks:
        out.append("")
        out.append("")
        out += block
    out.append("")
    out.append("")
    out.append("OPERATIONS: dict[str, tuple[str, str]] = {")
    for op_id, method, path in operations:
        out.append(f"    {json.dumps(op_id)}: ({json.dumps(method)}, {json.dumps(path)}),")
    out.append("}")
    out.append('"""Operation id -> (HTTP method, path template), for every operation of the API."""')
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    spec_path = Path(argv[1]) if len(argv) > 1 else DEFAULT_SPEC
    out = argv[2] if len(argv) > 2 else str(DEFAULT_OUT)
    text = generate(json.loads(spec_path.read_text(encoding="utf-8")))
    if out == "-":
        sys.stdout.write(text)
    else:
        Path(out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
