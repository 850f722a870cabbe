"""checkov over terraform/: no failed check, and every suppression says why.

checkov runs in its own environment through uvx (its pins clash with fastmcp's); the version is
pinned so a new release's new checks cannot break CI unannounced. About 10-15 s once installed.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from tests.deploy.helpers import TERRAFORM, require_tool

CHECKOV = "checkov==3.3.30"


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    uvx = require_tool("uvx")
    result = subprocess.run(
        [
            uvx,
            CHECKOV,
            "--directory",
            str(TERRAFORM),
            "--framework",
            "terraform",
            "--output",
            "json",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.stdout.strip(), result.stderr
    document = json.loads(result.stdout)
    reports = document if isinstance(document, list) else [document]
    (terraform,) = [r for r in reports if r.get("check_type") == "terraform"]
    return {**terraform["results"], "summary": terraform["summary"]}


def test_checkov_finds_no_failed_check(report: dict[str, Any]) -> None:
    failed = [
        f"{check['check_id']} {check['resource']} ({check['file_path']})"
        for check in report["failed_checks"]
    ]
    assert not failed, "\n".join(failed)


def test_checkov_parsed_every_file_and_ran_the_checks(report: dict[str, Any]) -> None:
    assert report["summary"]["parsing_errors"] == 0
    assert len(report["passed_checks"]) > 200


def test_every_suppression_gives_a_reason(report: dict[str, Any]) -> None:
    skipped = report["skipped_checks"]
    assert skipped, "expected the documented suppressions"
    for check in skipped:
        reason = check.get("check_result", {}).get("suppress_comment", "")
        assert len(reason.split()) >= 4, f"{check['check_id']} on {check['resource']}: {reason!r}"


def test_suppressions_are_inline_in_the_resource_they_excuse() -> None:
    pattern = re.compile(r"#checkov:skip=(CKV2?_AWS_\d+):(.*)")
    for path in TERRAFORM.glob("*.tf"):
        for match in pattern.finditer(path.read_text()):
            assert match.group(2).strip(), f"{path.name}: {match.group(1)} has no reason"
