"""`facedist review OUT` in a real browser (Debian's headless Chromium driven by Playwright):
answers by click and by key change people.csv at once, undo takes the last back, a reload or a
killed server loses nothing, two tabs answer one queue (a stale answer changes nothing), a
hostile name is text, and requests without the token or from
another origin are refused and change nothing."""
from __future__ import annotations

import csv
import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from synthetic import HOSTILE_PERSON, review_output
from test_report_browser import CHROMIUM, UNLOADED_IMAGES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: install Debian's chromium, or set FACEDIST_CHROMIUM")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


class Server:
    """`facedist review OUT` as a process of its own, its address read from its first line."""

    def __init__(self, out: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "facedist.cli", "review", str(out)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert " at http://127.0.0.1:" in line, line + self.proc.stderr.read()
        self.url = line.split(" at ", 1)[1].strip()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture
def out(tmp_path):
    o = tmp_path / "out"
    review_output(o, tmp_path / "photos", pairs=3, faces=6, names={0: HOSTILE_PERSON})
    return o


def people(o: Path) -> int:
    with open(o / "people.csv", newline="") as fh:
        return sum(1 for _ in csv.DictReader(fh))


def column(o: Path, sql: str) -> set:
    """The first column of a query on OUT's database, as a set."""
    db = sqlite3.connect(o / "facedist.sqlite")
    try:
        return {r[0] for r in db.execute(sql)}
    finally:
        db.close()


def settled(o: Path) -> set[str]:
    return column(o, "SELECT question FROM review_settled")


def open_review(browser, url: str):
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    seen = {"errors": [], "requests": [], "dialogs": []}
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    page.goto(url, wait_until="load")
    page.wait_for_selector("#question[data-question]")
    return page, seen


def question(page) -> str:
    return page.get_attribute("#question", "data-question")


def next_question(page, old: str) -> str:
    page.wait_for_function("old => document.querySelector('#question').dataset.question !== old",
                           arg=old)
    return question(page)


def test_click_key_undo_reload_and_kill(browser, out):
    server = Server(out)
    try:
        page, seen = open_review(browser, server.url)
        first = question(page)
        assert first.startswith("same:")
        body = page.inner_text("body")
        assert HOSTILE_PERSON in body and "Same person?" in body  # the name is text
        assert not page.evaluate(UNLOADED_IMAGES)  # every face shown
        n = people(out)
        page.click("#yes")  # by click: merged, written at once
        second = next_question(page, first)
        assert people(out) == n - 1 and first in settled(out)
        page.keyboard.press("n")  # by key: apart
        third = next_question(page, second)
        assert second in settled(out) and people(out) == n - 1
        page.click("#undo")  # the "no" taken back: the question again
        assert next_question(page, third) == second
        assert second not in settled(out)
        page.reload(wait_until="load")
        page.wait_for_selector("#question[data-question]")
        assert question(page) == second
        assert "1 answered" in page.inner_text("#progress")
        assert not seen["errors"] and not seen["dialogs"]
        origin = server.url.split("/" + server.url.rstrip("/").rsplit("/", 1)[1])[0]
        assert all(u.startswith(server.url) for u in seen["requests"]), seen["requests"]
        assert all(u.startswith(origin) for u in seen["requests"])
    finally:
        server.kill()
    # killed: nothing lost, a new server goes on where the page left off
    assert people(out) == n - 1 and first in settled(out)
    server = Server(out)
    try:
        page, seen = open_review(browser, server.url)
        assert question(page) == second
        assert "1 answered" in page.inner_text("#progress")
        page.keyboard.press("s")
        assert next_question(page, second) != second
        assert second in settled(out)
    finally:
        server.kill()


def test_two_tabs(browser, out):
    server = Server(out)
    try:
        one, seen_one = open_review(browser, server.url)
        two, seen_two = open_review(browser, server.url)
        first = question(one)
        assert question(two) == first
        n = people(out)
        one.keyboard.press("y")  # merged in the first tab
        second = next_question(one, first)
        assert people(out) == n - 1 and first in settled(out)
        two.keyboard.press("y")  # the second tab still shows it: refused, nothing changes twice
        assert next_question(two, first) == second
        assert "answered already" in two.inner_text("#error")
        assert people(out) == n - 1
        two.click("#skip")  # an answer in either tab is the queue's
        third = next_question(two, second)
        assert second in settled(out)
        one.reload(wait_until="load")
        one.wait_for_selector("#question[data-question]")
        assert question(one) == third and "2 answered" in one.inner_text("#progress")
        assert not seen_one["errors"] and not seen_one["dialogs"] and not seen_two["dialogs"]
    finally:
        server.kill()


def test_no_token_or_foreign_origin_refused(browser, out):
    server = Server(out)
    try:
        page, seen = open_review(browser, server.url)
        qid = question(page)
        n, before = people(out), settled(out)
        root = server.url.rstrip("/").rsplit("/", 1)[0] + "/"
        data = {"question": qid, "answer": "yes"}
        assert page.request.get(root).status == 403
        assert page.request.get(root + "api/questions").status == 403
        assert page.request.post(root + "api/answer", data=data).status == 403
        assert page.request.post(server.url + "api/answer", data=data,
                                 headers={"Origin": "http://evil.example"}).status == 403
        # a page elsewhere (here: a file) posting to the server is refused too
        other = page.context.new_page()
        other.goto("about:blank")
        status = other.evaluate("""async ([url, body]) => {
            try { const r = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                                              body: JSON.stringify(body)});
                  return r.status; } catch (e) { return "blocked"; } }""",
                                [server.url + "api/answer", data])
        assert status in (403, "blocked")
        assert people(out) == n and settled(out) == before  # nothing changed
        from facedist.store import OutputLock

        with OutputLock(out, what="run"):  # a run holds the folder: the page says Busy
            page.reload(wait_until="load")
            page.wait_for_selector("#busy:not([hidden])")
            assert "Busy" in page.inner_text("#busy") and page.is_disabled("#yes")
            assert page.request.post(server.url + "api/answer", data=data).status == 409
        assert people(out) == n and settled(out) == before
        assert page.request.post(server.url + "api/answer", data=data).status == 200
        assert people(out) == n - 1
    finally:
        server.kill()


def cli(o: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facedist.cli", "people", str(o), *args],
                          capture_output=True, text=True)


def plain(text: str) -> None:
    """No internal ids, scores or JSON in what the page says."""
    import re

    assert not re.search(r"\b(same|who|face):\d|worth|distance|person \d|\{|\}|\d\.\d{2}", text), text


def test_a_far_suggestion_is_not_taken_by_y(browser, out):

    # skip to "who is this?" for a person far from the one named (HOSTILE_PERSON, person 0):
    # only its own pair (person 1) is near
    for _ in range(10):
        q = json.loads(cli(out, "review", "-n", "1", "--json").stdout)[0]
        if q["kind"] == "who" and "yes" not in q["answers"]:
            break
        assert cli(out, "answer", q["question"], "skip").returncode == 0
    far = q["question"]
    server = Server(out)
    try:
        page, seen = open_review(browser, server.url)
        assert question(page) == far
        assert page.is_hidden("#yes")
        body = page.inner_text("#question")
        assert "Nobody named looks close" in body and "y key does nothing" in body
        plain(page.inner_text("body"))
        n, before = people(out), settled(out)
        page.keyboard.press("y")
        page.wait_for_timeout(700)
        assert question(page) == far and people(out) == n and settled(out) == before
        assert page.is_hidden("#error")
        page.click("button.suggestion")  # chosen explicitly: joined
        next_question(page, far)
        assert people(out) == n - 1 and far in settled(out)
        assert page.inner_text("#last") == "Joined " + HOSTILE_PERSON
        assert not seen["errors"]
    finally:
        server.kill()


def test_nobody_named_yet_y_is_inert(browser, tmp_path):
    o = tmp_path / "out"
    review_output(o, tmp_path / "photos", pairs=1, faces=6)
    q = json.loads(cli(o, "review", "-n", "1", "--json").stdout)[0]
    assert cli(o, "answer", q["question"], "skip").returncode == 0  # the "same person?"
    server = Server(o)
    try:
        page, seen = open_review(browser, server.url)
        who = question(page)
        assert who.startswith("who:") and page.is_hidden("#yes")
        assert "Nobody is named yet" in page.inner_text("#question")
        page.keyboard.press("y")
        page.wait_for_timeout(700)
        assert question(page) == who and page.is_hidden("#error") and not seen["errors"]
        page.fill("#name", "Ana")
        page.press("#name", "Enter")
        next_question(page, who)
        assert page.inner_text("#last") == "Named Ana"
    finally:
        server.kill()


def test_undo_brings_the_question_back_and_the_page_speaks_plain_words(browser, out):

    listed = [q["question"] for q in json.loads(cli(out, "review", "-n", "3", "--json").stdout)]
    # the second question answered elsewhere (the command line): undo on the page takes it
    # back, and it is the question shown next, ahead of the first
    assert cli(out, "answer", listed[1], "no").returncode == 0
    server = Server(out)
    try:
        page, seen = open_review(browser, server.url)
        assert question(page) == listed[0]
        plain(page.inner_text("body"))
        assert "Same person?" in page.inner_text("#question")
        page.screenshot(path=str(out / "review-page.png"), full_page=True)
        page.keyboard.press("u")
        assert next_question(page, listed[0]) == listed[1]
        assert page.inner_text("#last") == "Undone: Kept apart (asked again)"
        page.keyboard.press("n")
        assert next_question(page, listed[1]) == listed[0]
        assert page.inner_text("#last") == "Kept apart"
        page.keyboard.press("s")
        next_question(page, listed[0])
        assert page.inner_text("#last") == "Skipped"
        plain(page.inner_text("body"))
        # the ids stay in data attributes, for scripts and tests
        assert page.get_attribute("#question", "data-kind") in ("same", "who", "face")
        assert not seen["errors"]
    finally:
        server.kill()


@pytest.fixture
def album(tmp_path):
    """review_album's people, with a report written beside them."""
    from synthetic import review_album

    o = tmp_path / "out"
    made = review_album(o, tmp_path / "photos")
    assert subprocess.run([sys.executable, "-m", "facedist.cli", "report", str(o)],
                          capture_output=True, text=True).returncode == 0
    return o, made


def ignored(o: Path) -> set[int]:
    return column(o, "SELECT face_id FROM ignored_faces")


def test_a_whole_review_as_a_person_does_it(browser, album):
    """Split a mixed person by picking its odd face, name the largest from the field (it
    completes the names there are), reach "done", keep going to hide the strangers in bulk,
    undo that; the report opened after the answers shows them."""
    import time

    o, made = album
    server = Server(o)
    try:
        page, seen = open_review(browser, server.url)
        # the mixed person first: its odd face is shown last; picking it sets it apart
        assert question(page) == f"split:{made['B']}"
        body = page.inner_text("#question")
        assert "Which of these are not this person?" in body
        plain(body)
        assert page.is_hidden("#yes") and page.is_hidden("#no")
        apart = page.locator("#question button.apart")
        assert apart.is_disabled()
        shown = [int(v) for v in page.eval_on_selector_all(
            "#question .pick button", "bs => bs.map(b => b.dataset.face)")]
        assert shown[-1] == made["odd"] and len(shown) == 3
        page.click(f"#question .pick button[data-face='{made['odd']}']")
        assert page.get_attribute(f"#question .pick button[data-face='{made['odd']}']",
                                  "aria-pressed") == "true"
        apart.click()
        second = next_question(page, f"split:{made['B']}")
        assert "1 face set apart" in page.inner_text("#last")
        # the largest person: named from the field, which offers the names there are
        assert second == f"who:{made['A']}"
        assert page.get_attribute("#name", "list") == "names"  # completes from #names
        page.fill("#name", "Ana Lima")
        page.press("#name", "Enter")
        page.wait_for_selector("#question h2:text('The people are done')")
        assert page.eval_on_selector_all("#names option", "os => os.map(o => o.value)") == ["Ana Lima"]
        text = page.inner_text("#question")
        assert "unlikely to change anything" in text and "1 of them named" in text
        assert "done" in page.inner_text("#progress")
        plain(text)
        # past done: the strangers, in one question; hidden, then brought back by undo
        page.click("#question button.more")
        page.wait_for_selector("#question[data-kind='strangers']")
        assert "Hide these strangers?" in page.inner_text("#question")
        strangers = [int(v) for v in page.eval_on_selector_all(
            "#question img", "imgs => imgs.map(i => i.dataset.face)")]
        assert set(made["strangers"]) <= set(strangers) and made["odd"] in strangers
        old = question(page)
        page.click("#question button.hide")
        page.wait_for_function("() => document.querySelector('#last').textContent"
                               ".includes('Hidden as strangers')")
        assert ignored(o) == set(strangers)
        # nothing is left to ask once they are hidden: the page keeps no stale question id
        assert question(page) != old
        page.click("#undo")
        page.wait_for_selector(f"#question[data-question='{old}']")
        assert page.inner_text("#last").startswith("Undone: Hidden as strangers")
        assert ignored(o) == set()
        assert not seen["errors"] and not seen["dialogs"]
        # the report follows the answers once they pause
        report = o / "report" / "people.html"
        for _ in range(100):
            if "Ana Lima" in report.read_text(encoding="utf-8"):
                break
            time.sleep(0.1)
        shown_report = browser.new_page()
        shown_report.goto(report.as_uri(), wait_until="load")
        assert "Ana Lima" in shown_report.inner_text("body")
        shown_report.close()
    finally:
        server.kill()
    with open(o / "people.csv", newline="") as fh:
        rows = {int(r["person"]): r for r in csv.DictReader(fh)}
    assert rows[made["A"]]["name"] == "Ana Lima" and int(rows[made["B"]]["faces"]) == 2
