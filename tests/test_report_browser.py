"""The HTML report in a real browser: Debian's headless Chromium driven by Playwright.

A run over ../shared/data/labeled plus photos with hostile names (and a person named like a
script) must give pages where every section is there, every thumbnail loads, nothing is logged
as an error, nothing is requested from outside report/, and the names are text (no alert). A
generated 10,000-face report opens page by page within a bounded weight (its timing is
bench/report_scale.py's)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from conftest import LABELED, facedist_main
from synthetic import HOSTILE_PERSON, HOSTILE_PHOTOS, synthetic_output

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("FACEDIST_CHROMIUM", "/usr/bin/chromium")
SECTIONS = ["summary", "people", "unclear", "lookalikes", "neighbours", "threshold", "skipped",
            "performance"]

# Every <img> of the page loaded eagerly, then the srcs of those without a picture.
UNLOADED_IMAGES = """async () => {
  const imgs = [...document.images];
  imgs.forEach(i => { i.loading = "eager"; });
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(done => {
    i.addEventListener("load", done, {once: true});
    i.addEventListener("error", done, {once: true});
  })));
  return imgs.filter(i => !(i.naturalWidth > 0 && i.naturalHeight > 0)).map(i => i.getAttribute("src"));
}"""


class Visit:
    """One page opened: what it logged, requested and tried to pop up."""

    def __init__(self, page, url: str) -> None:
        self.page, self.errors, self.requests, self.dialogs = page, [], [], []
        page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("requestfailed", self._failed)
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.response = page.goto(url, wait_until="load")

    def _failed(self, request) -> None:
        # Chromium drops the tab icon's request when a click navigates first (CI saw it once):
        # that one is no fault of the page; a missing icon fails otherwise (ERR_FILE_NOT_FOUND)
        if not (request.url.endswith("/favicon.svg") and request.failure == "net::ERR_ABORTED"):
            self.errors.append(f"request failed: {request.url} ({request.failure})")

    def check(self, report: Path) -> None:
        """No error, nothing from outside the report folder, no dialog, every image shown."""
        unloaded = self.page.evaluate(UNLOADED_IMAGES)
        assert not unloaded, f"{self.page.url}: images without a picture: {unloaded[:5]}"
        inside = report.resolve().as_uri() + "/"
        outside = [u for u in self.requests if not u.startswith(inside)]
        assert not outside, f"{self.page.url}: requests outside the report: {outside[:5]}"
        assert not self.errors, f"{self.page.url}: {self.errors[:5]}"
        assert not self.dialogs, f"{self.page.url}: a dialog opened: {self.dialogs}"
        assert not self.page.query_selector("img[src='x']")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: install Debian's chromium (`make test` and .ci/run do), "
                    f"or set FACEDIST_CHROMIUM")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


@pytest.fixture
def open_page(browser):
    """Each visit a new page, in one browser context a test: a context a visit cost Chromium
    34 CPU-s over this module, against 20 (measured here)."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})

    def visit(url: str) -> Visit:
        return Visit(ctx.new_page(), url)

    yield visit
    ctx.close()


def facedist(*args: str) -> str:
    """The command's stdout (in this process: conftest.facedist_main)."""
    code, out, err = facedist_main(*args)
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def labeled_report(tmp_path_factory):
    """A real run (dlib-resnet, CPU) over the labeled photos plus hostile names, with --report,
    then a person named like a script and the report made again."""
    tmp = tmp_path_factory.mktemp("labeled")
    photos = tmp / "photos"
    shutil.copytree(LABELED, photos)
    odd = photos / "odd #dir %20 ?"
    odd.mkdir()
    for name in HOSTILE_PHOTOS:
        shutil.copyfile(LABELED / "people" / "obama" / "obama_1.jpg", odd / name)
    (odd / "<b>not a photo.jpg").write_bytes(b"<script>alert(1)</script>")
    out = tmp / "out"
    code, _, said = facedist_main("run", str(photos), "--out", str(out), "--report",
                                  "--no-progress", "--device", "cpu")
    assert code == 0 and (out / "report" / "index.html").is_file() and "report:" in said
    people = json.loads(facedist("people", str(out), "--json"))
    obama = max(people, key=lambda p: p["faces"])
    facedist("people", str(out), "name", str(obama["person"]), HOSTILE_PERSON)
    facedist("report", str(out))
    return out


def test_every_section_thumbnail_and_name_in_chromium(labeled_report, open_page, tmp_path):
    report = labeled_report / "report"
    index = open_page((report / "index.html").as_uri())
    index.check(report)
    for section in SECTIONS:
        assert index.page.locator(f"section#{section}").is_visible(), section
    text = index.page.inner_text("body")
    assert HOSTILE_PERSON in text and "<b>not a photo.jpg" in text
    index.page.screenshot(path=str(tmp_path / "index.png"), full_page=True)
    assert (tmp_path / "index.png").stat().st_size > 10_000

    pages = sorted(p.name for p in report.glob("*.html") if p.name != "face.html")
    seen_hostile_photos = set()
    for name in pages:
        visit = open_page((report / name).as_uri())
        visit.check(report)
        body = visit.page.inner_text("body")
        seen_hostile_photos |= {h for h in HOSTILE_PHOTOS if h in body}
        for link in visit.page.query_selector_all("a.photo"):
            target = Path(unquote(urlparse(link.get_attribute("href")).path))
            assert target.is_file(), f"{name}: photo link to {target}"
    assert seen_hostile_photos == set(HOSTILE_PHOTOS)


def test_neighbours_of_any_face_in_chromium(labeled_report, open_page):
    report = labeled_report / "report"
    index = open_page((report / "index.html").as_uri())
    index.page.click("section#people .card a")  # a person's page ...
    index.page.click(".faces figure.face a")  # ... and one of its faces
    index.page.wait_for_selector("#neighbours-view table")
    rows = index.page.query_selector_all("#neighbours-view table tr")
    assert len(rows) == 1 + 10  # header + k
    first = index.page.inner_text("#neighbours-view h2")
    rows[1].query_selector("a").click()  # a neighbour's own neighbours, through the hash
    index.page.wait_for_function(f"document.querySelector('#neighbours-view h2').textContent != {first!r}")
    index.check(report)
    # a face with a hostile photo name, by the index's form
    ids = [json.loads(p.read_text()[p.read_text().index(",") + 1:p.read_text().rindex(")")])
           for p in (report / "data").glob("neighbours-*.js")]
    hostile = [fid for chunk in ids for fid, e in chunk.items() if HOSTILE_PHOTOS[0] in e["path"]]
    visit = open_page((report / "index.html").as_uri())
    visit.page.fill("section#neighbours input[name=face]", hostile[0])
    visit.page.click("section#neighbours button")
    visit.page.wait_for_selector("#neighbours-view table")
    assert HOSTILE_PHOTOS[0] in visit.page.inner_text("#neighbours-view")
    assert HOSTILE_PERSON in visit.page.inner_text("#neighbours-view")
    visit.check(report)
    missing = open_page((report / "face.html").as_uri() + "#999999")
    assert "No face 999999" in missing.page.inner_text("#neighbours-view")
    missing.check(report)


def test_faces_sort_by_quality_in_chromium(labeled_report, open_page):
    """A person's page: the faces by quality, lowest or best first, and back as found."""
    report = labeled_report / "report"
    people = json.loads(facedist("people", str(labeled_report), "--json"))
    largest = max(people, key=lambda p: p["faces"])
    assert largest["faces"] >= 3
    visit = open_page((report / f"person-{largest['person']}.html").as_uri())
    page = visit.page

    def shown(attr: str) -> list[float]:
        return [float(f.get_attribute(attr)) for f in page.query_selector_all("div.faces figure.face")]

    found = shown("data-order")
    assert page.locator("p.sort").is_visible()
    page.click("button[data-sort=quality-asc]")
    assert shown("data-quality") == sorted(shown("data-quality"))
    page.click("button[data-sort=quality-desc]")
    assert shown("data-quality") == sorted(shown("data-quality"), reverse=True)
    assert page.get_attribute("button[data-sort=quality-desc]", "aria-pressed") == "true"
    page.click("button[data-sort=order]")
    assert shown("data-order") == found == sorted(found)
    visit.check(report)


def test_ten_thousand_faces_open_at_once(tmp_path, open_page):
    """10,000 faces (1,000 people): every kind of page opens whole in the browser, and what a
    page weighs is bounded: its size, and the thumbnails it loads at first (a page's worth).
    How long they take is bench/report_scale.py's to measure, not a test's."""
    out = tmp_path / "out"
    made = synthetic_output(out, tmp_path / "photos", n_photos=500, faces_per_photo=20,
                            n_people=1000)
    assert made["faces"] == 10_000
    facedist("report", str(out))
    report = out / "report"
    pages = {"index": "index.html", "people": "people-7.html",
             "person": sorted(report.glob("person-*.html"))[0].name, "face": "face.html#5000"}
    for what, name in pages.items():
        assert (report / name.split("#")[0]).stat().st_size < 400_000, name
        visit = open_page((report / name.split("#")[0]).as_uri() + ("#5000" if "#" in name else ""))
        if what == "face":
            visit.page.wait_for_selector("#neighbours-view table")
        thumbs = [u for u in visit.requests if "/thumbs/" in u]
        assert len(thumbs) <= 48 * 4 + 16, f"{name}: {len(thumbs)} thumbnails at load"  # a page's worth
        visit.check(report)
