"""scripts/audit decides from pip-audit's reports: a stand-in pip-audit plays each case."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

CANARY_VULN = {"name": "jinja2", "version": "2.10", "vulns": [{"id": "PYSEC-2019-217"}]}
CANARY_SKIP = {"name": "jinja2", "skip_reason": "Dependency not found on PyPI"}
FAKE = """#!{python}
import json, os, sys
args = sys.argv[1:]
service = args[args.index("-s") + 1]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(" ".join(args) + "\\n")
if "-r" in args:
    case = os.environ["FAKE_CANARY_" + service.upper()]
    if case == "crash":
        sys.exit("requests.exceptions.ConnectionError: cannot resolve")
    dep = {canary_vuln!r} if case == "vuln" else {canary_skip!r}
    print(json.dumps({{"dependencies": [dep], "fixes": []}}))
    sys.exit(1 if case == "vuln" else 0)
case = os.environ["FAKE_ENV"]
deps = [{{"name": "fastapi", "version": "0.1", "vulns": []}}]
if case == "vuln":
    deps.append({{"name": "starlette", "version": "0.1", "vulns": [{{"id": "GHSA-x", "fix_versions": ["9"]}}]}})
if case == "unaudited":
    deps.append({{"name": "private-lib", "skip_reason": "not on PyPI"}})
print(json.dumps({{"dependencies": deps, "fixes": []}}))
sys.exit(1 if case == "vuln" else 0)
"""


def audit(tmp_path: Path, **env: str) -> tuple[int, str, list[str]]:
    fake = tmp_path / "pip-audit"
    fake.write_text(
        FAKE.format(python=sys.executable, canary_vuln=CANARY_VULN, canary_skip=CANARY_SKIP)
    )
    fake.chmod(0o755)
    log = tmp_path / "calls.log"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "audit")],
        capture_output=True,
        text=True,
        env={**os.environ, "JOBLINE_PIP_AUDIT": str(fake), "FAKE_LOG": str(log), **env},
        timeout=60,
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return done.returncode, done.stdout + done.stderr, calls


def test_a_vulnerable_dependency_fails(tmp_path: Path) -> None:
    code, out, calls = audit(tmp_path, FAKE_CANARY_PYPI="vuln", FAKE_ENV="vuln")
    assert code == 1, out
    assert "VULNERABLE starlette 0.1: GHSA-x (fixed in 9)" in out
    assert "--strict" in calls[-1] and "--skip-editable" in calls[-1]


def test_a_clean_environment_passes(tmp_path: Path) -> None:
    code, out, _ = audit(tmp_path, FAKE_CANARY_PYPI="vuln", FAKE_ENV="clean")
    assert code == 0, out
    assert "no known vulnerability" in out


def test_a_dependency_that_could_not_be_audited_fails(tmp_path: Path) -> None:
    code, out, _ = audit(tmp_path, FAKE_CANARY_PYPI="vuln", FAKE_ENV="unaudited")
    assert code == 1, out
    assert "NOT AUDITED private-lib" in out


def test_osv_is_used_when_pypi_does_not_report_the_canary(tmp_path: Path) -> None:
    code, out, calls = audit(
        tmp_path, FAKE_CANARY_PYPI="skip", FAKE_CANARY_OSV="vuln", FAKE_ENV="vuln"
    )
    assert code == 1, out
    assert "-s osv" in calls[-1]


@pytest.mark.parametrize(("pypi", "osv"), [("skip", "crash"), ("crash", "skip")])
def test_no_service_skips_loudly_and_fails_when_required(
    tmp_path: Path, pypi: str, osv: str
) -> None:
    env = {"FAKE_CANARY_PYPI": pypi, "FAKE_CANARY_OSV": osv, "FAKE_ENV": "vuln"}
    code, out, calls = audit(tmp_path, **env)
    assert code == 0, out
    assert "pip-audit SKIPPED" in out and "NOT audited" in out
    assert "pypi:" in out and "osv:" in out
    assert all("-r" in call for call in calls), "the environment is not audited by a mute service"
    code, out, _ = audit(tmp_path, JOBLINE_AUDIT_REQUIRED="1", **env)
    assert code == 2, out


def test_ignored_advisories_are_passed_on_and_named(tmp_path: Path) -> None:
    code, out, calls = audit(
        tmp_path, FAKE_CANARY_PYPI="vuln", FAKE_ENV="clean", JOBLINE_AUDIT_IGNORE="GHSA-a,GHSA-b"
    )
    assert code == 0, out
    assert "--ignore-vuln GHSA-a --ignore-vuln GHSA-b" in calls[-1]
    assert "ignored on purpose (JOBLINE_AUDIT_IGNORE): GHSA-a" in out
