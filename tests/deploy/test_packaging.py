"""The service's runtime dependencies are exactly what its three packages import.

Installed the way the image installs it (`uv sync --locked --no-dev --no-editable`) into an
environment of this module's own, every module of mcp_service, cache and observability imports
and `mcp-service serve` answers /healthz.

That alone cannot catch a module imported but not declared: mcp, starlette and httpx2 were
imported while only fastmcp, which requires them, was declared, and a no-dev environment had
them all the same. That breaks only later, when fastmcp stops requiring one of them or allows a
major this code never ran with. So the imports are also read from the source with `ast`: every
third-party top-level module must come from a distribution that [project.dependencies] names,
and every distribution named there must be imported by the packages, its extras explained
below.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.helpers import ROOT, require_tool
from tests.support.processes import ServiceProcess

PACKAGES = ("mcp_service", "cache", "observability")

# Extras the service relies on without importing their packages by name: each is declared on
# purpose, and an extra added without a reason here fails the check below.
EXTRAS: dict[str, dict[str, tuple[str, ...]]] = {
    # uvicorn's default loop="auto" and http="auto" pick uvloop and httptools when installed.
    "uvicorn": {"standard": ("uvloop", "httptools")},
    # redis-py parses replies with hiredis when installed (cache/redisline.py also imports
    # hiredis itself, so it is declared by name too).
    "redis": {"hiredis": ("hiredis",)},
    # PyJWT verifies RS256 with cryptography (imported by name too, for the RSA key types).
    "pyjwt": {"crypto": ("cryptography",)},
}

# Declared distributions that ship no module of their own: the one they pin holds their code.
# fastmcp is fastmcp-slim[client,server] at the same version, and is what fastmcp documents
# installing; test_a_metapackage_holds_no_code_and_pins_the_one_that_does keeps this true.
METAPACKAGES = {"fastmcp": "fastmcp-slim"}


def module_names() -> list[str]:
    """Every module of the three packages, by dotted name, from their source directories."""
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def third_party_imports() -> dict[str, set[str]]:
    """Top-level module -> the files importing it, for every absolute import (in functions
    too) of a module that is neither the standard library's nor one of the three packages."""
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    tops = [alias.name.split(".")[0] for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    tops = [node.module.split(".")[0]]
                else:
                    continue
                for top in tops:
                    if top not in sys.stdlib_module_names and top not in PACKAGES:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def declared() -> dict[str, Requirement]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    requirements = [Requirement(text) for text in pyproject["project"]["dependencies"]]
    return {canonicalize_name(requirement.name): requirement for requirement in requirements}


@functools.cache
def installed() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distributions_of(module: str) -> set[str]:
    """The installed distributions that provide a top-level module (none: not installed)."""
    return {canonicalize_name(name) for name in installed().get(module, [])}


def test_the_scan_finds_the_imports_it_is_meant_to_find() -> None:
    imports = third_party_imports()
    assert {"fastmcp", "starlette", "redis", "uvicorn"} <= set(imports)  # top level, in a function
    assert not {"json", "asyncio", "__future__", "mcp_service", "cache"} & set(imports)
    assert "mcp_service.__main__" in module_names()
    assert "cache" in module_names()


def test_every_third_party_import_comes_from_a_declared_dependency() -> None:
    holding_code = {canonicalize_name(METAPACKAGES.get(name, name)) for name in declared()}
    undeclared = {
        module: f"{sorted(distributions_of(module)) or 'not installed'} imported by {sorted(files)}"
        for module, files in third_party_imports().items()
        if not distributions_of(module) & holding_code
    }
    assert undeclared == {}


def test_every_declared_dependency_is_imported() -> None:
    imported = {dist for module in third_party_imports() for dist in distributions_of(module)}
    unused = [
        name
        for name in declared()
        if canonicalize_name(METAPACKAGES.get(name, name)) not in imported
    ]
    assert unused == []  # a tool of the tests or bench/ belongs in the dev group


def test_every_declared_extra_has_its_reason() -> None:
    extras = {name: set(req.extras) for name, req in declared().items() if req.extras}
    assert extras == {name: set(reasons) for name, reasons in EXTRAS.items()}


def test_a_metapackage_holds_no_code_and_pins_the_one_that_does() -> None:
    for meta, holder in METAPACKAGES.items():
        version = importlib.metadata.version(meta)
        pins = [Requirement(text) for text in importlib.metadata.requires(meta) or []]
        [pin] = [req for req in pins if canonicalize_name(req.name) == holder and not req.marker]
        assert str(pin.specifier) == f"=={version}"
        files = importlib.metadata.files(meta) or []
        assert not [file for file in files if file.suffix == ".py"], f"{meta} ships modules"


# An environment with only the runtime dependencies ------------------------------------------


@pytest.fixture(scope="module")
def runtime_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment holding the project (built as a wheel) and its locked runtime
    dependencies alone, as the Dockerfile installs them."""
    uv = os.environ.get("UV") or require_tool("uv")  # `uv run` tells its children where it is
    venv = tmp_path_factory.mktemp("runtime") / "venv"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_PROJECT_ENVIRONMENT"}
    }
    env["UV_PROJECT_ENVIRONMENT"] = str(venv)
    # uv reuses the wheel it built of this project until pyproject.toml changes, so without
    # --reinstall-package a module added since would be missing from the environment.
    sync = ["sync", "--locked", "--no-dev", "--no-editable", "--reinstall-package", "mcp-service"]
    done = subprocess.run(
        [uv, *sync, "--python", sys.executable],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return venv


def run_in(venv: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run that environment's python away from the source tree (cwd is not ROOT)."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    return subprocess.run(
        [str(venv / "bin" / "python"), *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# Given {"modules": [...], "probes": [...]}: imports each module, looks each probe up, and
# prints what it found as JSON.
IMPORT_EACH = """
import importlib, importlib.util, json, sys, traceback
given = json.loads(sys.argv[1])
failed = {}
for name in given["modules"]:
    try:
        importlib.import_module(name)
    except BaseException:
        failed[name] = traceback.format_exc(limit=-2)
packages = ("mcp_service", "cache", "observability")
print(json.dumps({
    "failed": failed,
    "files": {name: sys.modules[name].__file__ for name in packages if name in sys.modules},
    "found": {name: importlib.util.find_spec(name) is not None for name in given["probes"]},
}))
"""

# Found there, these would mean the dev group leaked in, and with it what it brings (fakeredis
# brings redis, pytest brings packaging), which could hide a missing runtime dependency.
DEV_ONLY = ("pytest", "fakeredis")


def test_every_module_imports_with_only_the_runtime_dependencies(
    runtime_env: Path, tmp_path: Path
) -> None:
    # Importing mcp_service.__main__ runs the command; `python -m mcp_service --help` does that.
    modules = [name for name in module_names() if name != "mcp_service.__main__"]
    extras = sorted({module for by in EXTRAS.values() for mods in by.values() for module in mods})
    given = json.dumps({"modules": modules, "probes": [*extras, *DEV_ONLY]})
    done = run_in(runtime_env, "-c", IMPORT_EACH, given, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["failed"] == {}
    installed = {name: file.startswith(str(runtime_env)) for name, file in report["files"].items()}
    assert installed == dict.fromkeys(PACKAGES, True)  # the built wheel, not the source tree
    assert report["found"] == {**dict.fromkeys(extras, True), **dict.fromkeys(DEV_ONLY, False)}
    usage = run_in(runtime_env, "-m", "mcp_service", "--help", cwd=tmp_path)
    assert usage.returncode == 0, usage.stderr
    assert "serve" in usage.stdout


def test_serve_answers_healthz_with_only_the_runtime_dependencies(
    runtime_env: Path, tmp_path: Path
) -> None:
    server = ServiceProcess(
        {"APP_ENV": "local"}, tmp_path, command=[str(runtime_env / "bin" / "mcp-service")]
    )
    with server:  # started on a free port, stopped by its PID: SIGTERM, then SIGKILL
        response = httpx.get(f"{server.url}/healthz", timeout=5)
    assert response.status_code == 200, server.log()
    assert response.json() == {"status": "ok"}
    assert server.process is not None
    # uvicorn shuts down, then re-raises the SIGTERM it caught: either is a clean stop.
    assert server.process.returncode in (0, -signal.SIGTERM), server.log()
