"""The README's settings, in two tables: what a deployment sets, and tuning (folded away).

Every field of Settings is in exactly one of them, with its default, and in the table its
group in config.USER_SETTINGS says; `jobline check-config` prints the queues first, then
the settings in the same two groups.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jobline.cli import app
from jobline.config import USER_SETTINGS, Settings, get_settings
from tests.support import REPO

README = REPO / "README.md"


def settings_section() -> str:
    text = README.read_text()
    return text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]


def table_rows(text: str) -> dict[str, list[str]]:
    """A table's rows by variable name, each as its cells."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| `JOBLINE_"):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            rows[cells[0].strip("`")] = cells
    return rows


def shown_default(name: str) -> str:
    """A setting's default as the README's table shows it (without the backticks)."""
    default = Settings.model_fields[name].default
    if default is None or default == "":
        return "none"
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, float):
        return f"{default:g}"
    return str(default)


def variable(name: str) -> str:
    return f"JOBLINE_{name.upper()}"


def paste_line(name: str) -> str:
    description = Settings.model_fields[name].description or "WHAT IT DOES"
    return f"| `{variable(name)}` | `{shown_default(name)}` | {description} |"


def test_the_user_table_comes_first_and_the_tuning_one_is_folded_away() -> None:
    section = settings_section()
    before, details = section.split("<details>", 1)
    assert "<summary>" in details and details.rstrip().endswith("</details>")
    assert table_rows(before) and table_rows(details)


def test_every_setting_is_in_the_table_of_its_group_with_its_default() -> None:
    before, details = settings_section().split("<details>", 1)
    tables = {"user": table_rows(before), "tuning": table_rows(details)}
    fields = list(Settings.model_fields)
    assert set(fields) >= USER_SETTINGS, f"not settings: {sorted(USER_SETTINGS - set(fields))}"
    for group, names in (
        ("user", [n for n in fields if n in USER_SETTINGS]),
        ("tuning", [n for n in fields if n not in USER_SETTINGS]),
    ):
        rows = tables[group]
        # A new setting fails here with the row to paste into the README.
        missing = [paste_line(name) for name in names if variable(name) not in rows]
        assert not missing, f"add to README.md's {group} settings table:\n" + "\n".join(missing)
        extra = set(rows) - {variable(name) for name in names}
        assert not extra, f"in the {group} table but not {group} settings: {sorted(extra)}"
        for name in names:
            if name == "migrations_dir":
                continue  # a path computed at run time: where the package's own are
            cell = rows[variable(name)][1].strip("`")
            assert cell == shown_default(name), (
                f"{variable(name)}: README {cell!r}, the code {shown_default(name)!r}"
            )


@pytest.fixture
def shipped_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("JOBLINE_QUEUES_FILE", str(REPO / "queues.yaml"))
    monkeypatch.setenv("JOBLINE_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("JOBLINE_SECRET_KEY", "k" * 40)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_check_config_prints_the_queues_then_the_settings_then_the_tuning(
    shipped_config: None,
) -> None:
    result = CliRunner().invoke(app, ["check-config"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    headings = [line for line in lines if re.match(r"^\S.*:", line)]
    order = [h.split(" ", 1)[0].rstrip(":") for h in headings]
    assert order[0] == "queues" and order[-2:] == ["settings", "tuning"], headings
    assert lines[-1] == "ok"
    assert lines[1].startswith("  music: queue=music")
    assert "    music.transcode: function tasks.music:transcode (imports)" in lines[2]
    start, tuning = lines.index("settings:"), lines.index("tuning:")
    user = {line.split(":", 1)[0].strip() for line in lines[start + 1 : tuning]}
    tuned = {line.split(":", 1)[0].strip() for line in lines[tuning + 1 : -1]}
    assert user == USER_SETTINGS
    assert tuned == set(Settings.model_fields) - USER_SETTINGS
    assert "  secret_key: ***" in lines


def test_check_config_stops_at_a_bad_queues_file_before_printing_settings(
    shipped_config: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "queues.yaml"
    bad.write_text("domains: {music: {queue: music, job_types: {a: {function: tasks.nope:x}}}}\n")
    monkeypatch.setenv("JOBLINE_QUEUES_FILE", str(bad))
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["check-config"])
    assert result.exit_code == 2
    assert "function 'tasks.nope:x' cannot be imported" in result.output
    assert "settings:" not in result.output
