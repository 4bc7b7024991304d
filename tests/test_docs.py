"""The examples in public classes' docstrings run as written."""
import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["facedist.cluster", "facedist.people", "facedist.align", "facedist.atomic",
                                  "facedist.store", "facedist.api", "facedist.discover",
                                  "facedist.review", "facedist.display", "facedist.config"])
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_docs_link_commands_and_files_that_exist(doc):
    """README.md and docs/: every relative link resolves; every `facedist COMMAND` is one; every
    flag named after `facedist run` is one of its flags; every repository file named exists."""
    import re

    from facedist.cli import build_parser

    text = doc.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#\s]+)", text):
        if "://" not in target:
            assert (doc.parent / target).exists(), f"{doc.name}: link to {target}"
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    commands = set(sub.choices)
    for cmd in re.findall(r"^facedist (\w+)", text, flags=re.M) + re.findall(r"`facedist (\w+)", text):
        assert cmd in commands, f"{doc.name}: facedist {cmd}"
    run_flags = {o for a in sub.choices["run"]._actions for o in a.option_strings}
    for line in re.findall(r"^facedist run .*(?:\n {13}.*)*", text, flags=re.M):
        for flag in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", line):
            assert flag in run_flags, f"{doc.name}: facedist run {flag}"
    for path in re.findall(r"`((?:bench|tools|tests|src/facedist|docs)/[\w./-]+\.(?:py|md|json|sh))`", text):
        assert (ROOT / path).exists(), f"{doc.name}: {path}"


def test_the_readme_fits_a_screen_or_so():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


def test_docs_speak_to_users_not_of_the_project_s_tickets():
    """README.md, docs/ and the code's own text name no ticket ("issue 15") nor who filed one:
    a user has neither."""
    import re

    texts = [*DOCS, *sorted((ROOT / "src" / "facedist").rglob("*.py"))]
    found = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in texts
             for m in re.finditer(r"\bissue \d+|\bthe filer\b", p.read_text(encoding="utf-8"),
                                  flags=re.I)]
    assert not found, found
