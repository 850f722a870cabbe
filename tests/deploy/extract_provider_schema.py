"""Regenerate provider_schema.json: the argument names of the providers' resources.

`terraform validate` needs the provider plug-in, which this machine cannot download. The CDK for
Terraform bindings on the npm registry are generated from the provider's own schema, so they
carry every argument and nested block of every resource, and whether each is required. This
script keeps the entries for the resource and data source types terraform/ uses, so the test
that checks argument names (test_terraform_schema.py) runs without node or the packages:

    cd "$(mktemp -d)"
    npm pack @cdktf/provider-aws@19.65.1 @cdktf/provider-random@12.0.1 @cdktf/provider-tls@11.0.1
    mkdir aws random tls
    tar xzf cdktf-provider-aws-19.65.1.tgz -C aws
    tar xzf cdktf-provider-random-12.0.1.tgz -C random
    tar xzf cdktf-provider-tls-11.0.1.tgz -C tls
    uv run python /path/to/repo/tests/deploy/extract_provider_schema.py \
        aws/package random/package tls/package

@cdktf/provider-aws 19.65.1 is generated from hashicorp/aws 5.99.1, @cdktf/provider-random
12.0.1 from hashicorp/random 3.7.2 and @cdktf/provider-tls 11.0.1 from hashicorp/tls 4.1.0
(their READMEs say so). A node is
{argument: [required, nested node, "any" (a block the bindings leave untyped) or null]}.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import hcl2

HERE = Path(__file__).parent
TERRAFORM = HERE.parents[1] / "terraform"
OUTPUT = HERE / "provider_schema.json"
OPTIONS = hcl2.SerializationOptions(with_comments=False, strip_string_quotes=True)

_TYPE = re.compile(r'^(\w+)\.tfResourceType = "(\w+)";', re.M)
_FUNCTION = re.compile(r"^function (\w+)ToTerraform\(struct\) \{(.*?)^\}", re.M | re.S)
_SYNTH = re.compile(r"synthesizeAttributes\(\) \{\s*return \{(.*?)\};\s*\}", re.S)
_ENTRY = re.compile(r"^\s*(\w+): (.*?),?$", re.M)
_NESTED = re.compile(r"(?<![.\w])([a-z]\w*)ToTerraform\b")
_INTERFACE = re.compile(r"^export interface (\w+)(?: extends [^{]+)? \{(.*?)^\}", re.M | re.S)
_PROPERTY = re.compile(r"#(\w+) \w+#\w+\}\s*\*/\s*readonly \w+(\??):")


def _interfaces(dts: str) -> dict[str, dict[str, bool]]:
    """Interface name -> {terraform argument: required}."""
    return {
        name: {arg: optional != "?" for arg, optional in _PROPERTY.findall(body)}
        for name, body in _INTERFACE.findall(dts)
    }


def _entries(body: str) -> dict[str, str | None]:
    """The returned object's keys -> the nested converter they call, if any ("any" for the
    few blocks too deeply recursive for the bindings to type, such as WAF statements)."""
    entries: dict[str, str | None] = {}
    for key, expr in _ENTRY.findall(body):
        nested = _NESTED.search(expr)
        if "cdktf.anyToTerraform" in expr:
            entries[key] = "any"
        else:
            entries[key] = nested.group(1) if nested else None
    return entries


def _node(
    entries: dict[str, str | None],
    required: dict[str, bool],
    functions: dict[str, str],
    interfaces: dict[str, dict[str, bool]],
) -> dict[str, Any]:
    node: dict[str, Any] = {}
    for arg, converter in entries.items():
        child: Any = None
        if converter == "any":
            child = "any"
        elif converter is not None and converter in functions:
            iface = converter[0].upper() + converter[1:]
            child = _node(
                _entries(functions[converter]), interfaces.get(iface, {}), functions, interfaces
            )
        node[arg] = [required.get(arg, False), child]
    return node


def extract(directory: Path) -> tuple[str, dict[str, Any]]:
    js = (directory / "index.js").read_text()
    match = _TYPE.search(js)
    synth = _SYNTH.search(js)
    if match is None or synth is None:
        raise ValueError(f"{directory} is not a generated resource binding")
    class_name, tf_type = match.groups()
    functions = {name: body for name, body in _FUNCTION.findall(js)}
    interfaces = _interfaces((directory / "index.d.ts").read_text())
    node = _node(
        _entries(synth.group(1)), interfaces.get(f"{class_name}Config", {}), functions, interfaces
    )
    node.pop("id", None)  # computed; declaring it is allowed but never needed
    return tf_type, node


def used_types() -> tuple[set[str], set[str]]:
    resources: set[str] = set()
    data: set[str] = set()
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open() as handle:
            document = hcl2.load(handle, serialization_options=OPTIONS)
        for block in document.get("resource", []):
            resources.update(block)
        for block in document.get("data", []):
            data.update(block)
    return resources, data


def main(packages: list[str]) -> int:
    resources, data = used_types()
    schema: dict[str, Any] = {"source": [], "resource": {}, "data": {}}
    for package in packages:
        readme = (Path(package) / "README.md").read_text()
        version = re.search(r"bindings for (\S+) provider version ([\d.]+)", readme)
        schema["source"].append(
            f"npm {json.loads((Path(package) / 'package.json').read_text())['name']} "
            f"(CDK for Terraform bindings), generated from "
            + (f"{version.group(1)} {version.group(2)}" if version else "?")
        )
        lib = Path(package) / "lib"
        for directory in sorted(p for p in lib.iterdir() if (p / "index.js").exists()):
            is_data = directory.name.startswith("data-")
            try:
                tf_type, node = extract(directory)
            except ValueError:
                continue
            if is_data and tf_type in data:
                schema["data"][tf_type] = node
            elif not is_data and tf_type in resources:
                schema["resource"][tf_type] = node
    missing = (resources - set(schema["resource"])) | (data - set(schema["data"]))
    OUTPUT.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUTPUT} ({len(schema['resource'])} resources, {len(schema['data'])} data)")
    for name in sorted(missing):
        print(f"not in the packages given (misspelt, or another provider?): {name}")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
