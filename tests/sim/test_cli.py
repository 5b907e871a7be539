"""`trustlive migrate`, `seed` and `user create` as a person runs them (in-process, SQLite in a tmp dir)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers import run
from tests.sim.world import fingerprint
from trustlive.cli import app


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[CliRunner, str]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'trustlive.db'}"
    for name in ("TRUSTLIVE_MEDIA_DIR", "TRUSTLIVE_NEW_PASSWORD", "TRUSTLIVE_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRUSTLIVE_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("TRUSTLIVE_DATABASE_URL", url)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    return runner, url


def plain(text: str) -> str:
    """Output with Rich's box drawing removed and whitespace collapsed."""
    return " ".join(re.sub(r"[\u2500-\u257f]", " ", text).split())


def test_seed_twice_gives_the_same_counts(cli: tuple[CliRunner, str], tmp_path: Path) -> None:
    runner, url = cli
    first = runner.invoke(app, ["seed", "--buyers", "10"])
    assert first.exit_code == 0, first.output
    assert "demo world ready" in first.output
    after_first = run(fingerprint(url))

    second = runner.invoke(app, ["seed", "--buyers", "10"])
    assert second.exit_code == 0, second.output
    assert "already seeded" in plain(second.output)
    assert run(fingerprint(url)) == after_first

    counts = after_first["counts"]
    assert counts["shops"] == 6 and counts["products"] >= 24
    assert sum(1 for name, _ in after_first["users"] if name.startswith("buyer0")) == 10
    assert (tmp_path / "media" / "products").is_dir()


def test_user_create_with_roles(cli: tuple[CliRunner, str]) -> None:
    runner, url = cli
    ok = runner.invoke(app, ["user", "create", "boss", "--role", "ops", "--password", "long-enough-1"])
    assert ok.exit_code == 0, ok.output
    assert "created user boss" in ok.output and "ops" in ok.output

    again = runner.invoke(app, ["user", "create", "boss", "--role", "ops", "--password", "long-enough-1"])
    assert again.exit_code != 0
    assert "already taken" in plain(again.output)


def test_user_create_refuses_an_unknown_role(cli: tuple[CliRunner, str]) -> None:
    runner, url = cli
    result = runner.invoke(
        app, ["user", "create", "wizard1", "--role", "ops", "--role", "wizard", "--password", "long-enough-1"]
    )
    assert result.exit_code != 0
    message = plain(result.output)
    assert "unknown role 'wizard'" in message
    assert "--role" in message
    assert "wizard1" not in {name for name, _ in run(fingerprint(url))["users"]}
