"""The suite's own helpers (tests/conftest.py): an extra that make install puts in is skipped
where it is missing, except in CI, where a missing extra is a broken install and fails."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import require

MISSING = "facedist_no_such_extra"


def outcome(module: str, monkeypatch, ci: str | None) -> tuple[str, str]:
    """What require(module) does with CI unset (None) or set to `ci`: ("imported", ""),
    ("skipped", why) or ("failed", why); caught here, so that neither ends this test."""
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    try:
        require(module)
    except pytest.skip.Exception as exc:
        return "skipped", str(exc)
    except pytest.fail.Exception as exc:
        return "failed", str(exc)
    return "imported", ""


@pytest.mark.parametrize("ci", [None, "", "0", "false", "no"])
def test_a_missing_extra_is_skipped_outside_ci(monkeypatch, ci):
    kind, why = outcome(MISSING, monkeypatch, ci)
    assert kind == "skipped" and MISSING in why  # pytest's words


@pytest.mark.parametrize("ci", ["true", "1", "True"])
def test_a_missing_extra_fails_in_ci(monkeypatch, ci):
    assert outcome(MISSING, monkeypatch, ci) == (
        "failed", f"{MISSING} cannot be imported, in CI where make install puts it in: "
                  f"No module named '{MISSING}'")


@pytest.mark.parametrize("ci", [None, "true"])
def test_an_extra_there_is_imported(monkeypatch, ci):
    assert outcome("json", monkeypatch, ci) == ("imported", "")
    assert require("json") is json


def test_every_test_of_an_extra_goes_through_require():
    """pytest.importorskip of a test module's own would skip in CI too."""
    here = Path(__file__)
    found = [p.name for p in sorted(here.parent.glob("*.py"))
             if p.name not in ("conftest.py", here.name) and "importorskip(" in p.read_text()]
    assert found == []
