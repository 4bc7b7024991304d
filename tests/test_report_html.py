"""The HTML report's files (report/html.py, report/thumbs.py) on generated output folders: pages,
escaping, links, thumbnails, paging and re-runs. No model, no shared data: these are fast. The
same reports in a real browser: tests/test_report_browser.py."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from PIL import Image

from facedist.api import open_db, write_report
from facedist.report import html as report_html
from facedist.report.thumbs import THUMB_PX, cut, square_around
from facedist.store import FaceStore
from synthetic import HOSTILE_PERSON, HOSTILE_PHOTOS, face_colour, synthetic_output


class Links(HTMLParser):
    """Every href and src of a page, and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.text: list[str] = []
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        self.urls += [a[k] for k in ("href", "src") if a.get(k)]

    def handle_data(self, data):
        self.text.append(data)


def parse(path: Path) -> Links:
    p = Links()
    p.feed(path.read_text(encoding="utf-8"))
    return p


@pytest.fixture
def output(tmp_path):
    out, photos = tmp_path / "out", tmp_path / "photos dir #1"
    made = synthetic_output(out, photos, n_photos=8, faces_per_photo=3, n_people=5,
                            names={0: HOSTILE_PERSON, 1: "Ana"}, photo_names=HOSTILE_PHOTOS,
                            bad_files={"<b>broken.jpg": b"not a photo"})
    return out, photos, made


def test_every_page_written_and_every_local_link_resolves(output):
    out, photos, made = output
    r = write_report(out)
    root = out / "report"
    assert r.index == root / "index.html" and r.faces == made["faces"] == 24
    assert r.people == made["people"] == 5 and r.thumbs_made == 24 and not r.thumbs_failed
    index = parse(root / "index.html")
    ids = {a.get("id") for _, a in index.tags}
    assert {"summary", "people", "lookalikes", "neighbours", "threshold", "skipped",
            "performance"} <= ids
    pages = sorted(root.glob("*.html"))
    assert {p.name for p in pages} >= {"index.html", "people.html", "lookalikes.html",
                                      "skipped.html", "face.html"} | {
        f"person-{p.id}.html" for p in open_db(out).people()}
    for page in pages:
        for url in parse(page).urls:
            if url.startswith("file:"):
                continue
            target = url.split("#")[0].split("?")[0]
            assert "://" not in url, f"{page.name}: {url} leaves the report folder"
            if target:
                assert (root / unquote(target)).is_file(), f"{page.name}: {url} is broken"


def test_names_are_text_never_markup(output):
    out, photos, _ = output
    write_report(out)
    root = out / "report"
    seen_person = seen_photo = False
    for page in list(root.glob("*.html")):
        raw = page.read_text(encoding="utf-8")
        assert "<img src=x" not in raw and "<script>alert" not in raw and "<b>broken" not in raw
        text = "".join(parse(page).text)
        seen_person |= HOSTILE_PERSON in text
        seen_photo |= HOSTILE_PHOTOS[0] in text
        scripts = [a.get("src") for tag, a in parse(page).tags if tag == "script"]
        assert scripts in ([], ["face.js"], ["sort.js"]), f"{page.name}: scripts {scripts}"
    assert seen_person and seen_photo
    assert "<b>broken.jpg" in "".join(parse(root / "index.html").text)  # skipped, as text
    for data in (root / "data").glob("*.js"):
        raw = data.read_text()
        assert "<" not in raw and ">" not in raw  # JSON with \u003c: inert even inline
        payload = json.loads(raw[raw.index(",") + 1:raw.rindex(")")])
        assert any(HOSTILE_PERSON == e["name"] for e in payload.values())


def test_photo_links_point_at_the_photos_however_spelled(output):
    out, photos, made = output
    write_report(out)
    linked = set()
    for page in (out / "report").glob("person-*.html"):
        for url in parse(page).urls:
            if url.startswith("file:"):
                u = urlparse(url)
                assert not u.query and not u.fragment, url  # '?' and '#' stayed in the path
                linked.add(unquote(u.path))
    assert linked == {str(Path(p).resolve()) for p in made["paths"]
                      if not p.endswith("broken.jpg")}
    assert all(Path(p).is_file() for p in linked)


def test_thumbnails_are_the_faces_upright_and_small(output):
    out, photos, _ = output
    write_report(out)
    db = open_db(out)
    t = db.faces()
    writer = report_html.ReportWriter(db, out / "report")
    writer.gather()
    for f in writer.faces:
        thumb = Image.open(out / "report" / f.thumb)
        assert thumb.size == (THUMB_PX, THUMB_PX) and thumb.format == "JPEG"
        centre = np.asarray(thumb.convert("RGB"))[THUMB_PX // 2 - 8:THUMB_PX // 2 + 8,
                                                  THUMB_PX // 2 - 8:THUMB_PX // 2 + 8]
        # face j of the generated set is face_colour(j): photo order = face order there
        photo = made_index(t.paths[f.row])
        j = photo * 3 + int(t.face_index[f.row])
        assert np.abs(centre.mean((0, 1)) - face_colour(j)).max() < 12, (t.paths[f.row], j)


def made_index(path: str) -> int:
    name = Path(path).name
    return HOSTILE_PHOTOS.index(name) if name in HOSTILE_PHOTOS else int(re.findall(r"\d+", name)[-1])


def test_a_rerun_cuts_only_missing_thumbnails_and_drops_stale_files(output):
    out, _, _ = output
    first = write_report(out)
    root = out / "report"
    thumbs = sorted(root.glob("thumbs/*/*.jpg"))
    assert len(thumbs) == first.thumbs_made == 24
    mtimes = {p: p.stat().st_mtime_ns for p in thumbs}
    thumbs[0].unlink()
    (root / "thumbs" / "00").mkdir(exist_ok=True)
    (root / "thumbs" / "00" / ("0" * 18 + ".jpg")).write_bytes(b"x")  # facedist's name: stale
    (root / "thumbs" / "00" / "gone.jpg").write_bytes(b"x")  # the user's: kept
    (root / "person-99999.html").write_text("old")  # no report listed it: the user's, kept
    again = write_report(out)
    assert (again.thumbs_made, again.thumbs_kept) == (1, 23)
    assert all(p.stat().st_mtime_ns == m for p, m in mtimes.items() if p != thumbs[0])
    assert thumbs[0].exists() and not (root / "thumbs" / "00" / ("0" * 18 + ".jpg")).exists()
    assert (root / "thumbs" / "00" / "gone.jpg").exists() and (root / "person-99999.html").exists()


def test_a_photo_changed_or_gone_since_the_run_is_named_not_cut(output):
    out, photos, made = output
    changed, gone = Path(made["paths"][4]), Path(made["paths"][5])
    Image.new("RGB", (50, 50)).save(changed)
    gone.unlink()
    r = write_report(out)
    assert set(r.thumbs_failed) == {str(changed), str(gone)}
    assert "changed since the run" in r.thumbs_failed[str(changed)]
    assert "vanished" in r.thumbs_failed[str(gone)]
    # the index names each photo with its reason; each of their 3 faces shows grey, no other does
    index = " ".join(parse(out / "report" / "index.html").text)
    assert "2 photo(s) could not give thumbnails" in index
    for photo, reason in r.thumbs_failed.items():
        assert f"{photo}: {reason}" in index
    thumbs = face_thumbs_by_photo(out / "report")
    assert sum(map(len, thumbs.values())) == made["faces"]
    assert thumbs.pop(str(changed)) == ["missing.svg"] * 3
    assert thumbs.pop(str(gone)) == ["missing.svg"] * 3
    assert all(src != "missing.svg" and (out / "report" / src).is_file()
               for srcs in thumbs.values() for src in srcs)
    assert r.thumbs_made == 24 - 6


def face_thumbs_by_photo(report: Path) -> dict[str, list[str]]:
    """photo -> the thumbnail of each of its faces, as the person pages show them."""
    thumbs: dict[str, list[str]] = {}
    for page in report.glob("person-*.html"):
        src = None
        for tag, a in parse(page).tags:
            if tag == "figure" and a.get("class") == "face":
                src = None
            elif tag == "img" and src is None:
                src = a["src"]
            elif tag == "a" and a.get("class") == "photo":
                thumbs.setdefault(a["title"], []).append(src)
    return thumbs


def test_long_lists_are_paged(output, monkeypatch):
    out, _, _ = output
    monkeypatch.setattr(report_html, "PEOPLE_PER_PAGE", 2)
    monkeypatch.setattr(report_html, "FACES_PER_PAGE", 2)
    monkeypatch.setattr(report_html, "PAIRS_PER_PAGE", 3)
    write_report(out)
    root = out / "report"
    assert sorted(p.name for p in root.glob("people*.html")) == ["people-2.html", "people-3.html",
                                                                 "people.html"]
    people = open_db(out).people()
    biggest = max(people, key=lambda p: p.faces)
    assert len(list(root.glob(f"person-{biggest.id}*.html"))) == -(-biggest.faces // 2)
    per_page = [len(re.findall(r'<figure class="face"', p.read_text()))
                for p in sorted(root.glob(f"person-{biggest.id}*.html"))]
    assert sum(per_page) == biggest.faces and max(per_page) == 2
    assert 'href="people-2.html" rel="next"' in (root / "people.html").read_text()


def neighbour_data(report: Path) -> dict:
    data = {}
    for f in (report / "data").glob("neighbours-*.js"):
        raw = f.read_text()
        data.update(json.loads(raw[raw.index(",") + 1:raw.rindex(")")]))
    return data


@pytest.mark.parametrize("source", ["the run's neighbors.parquet", "computed", "a stale table"])
def test_neighbour_data_is_each_faces_k_nearest(output, source):
    import pyarrow.parquet as pq

    out, _, _ = output
    if source == "computed":
        (out / "neighbors.parquet").unlink()
    elif source == "a stale table":  # another run's rows: must not be taken
        t = pq.read_table(out / "neighbors.parquet")
        pq.write_table(t.slice(10), out / "neighbors.parquet")
    write_report(out)
    db = open_db(out)
    t = db.faces()
    data = neighbour_data(out / "report")
    assert set(data) == {str(i) for i in t.face_ids}
    x = t.embeddings.astype(np.float64)
    d = np.sqrt(np.maximum(((x[:, None] - x[None]) ** 2).sum(-1), 0))
    np.fill_diagonal(d, np.inf)
    for row, fid in enumerate(t.face_ids):
        near = data[str(fid)]["near"]
        assert len(near) == min(db.settings.k, len(t) - 1)
        want = np.sort(d[row])[:len(near)]
        assert np.allclose([n[1] for n in near], want, atol=2e-4)
        assert [n[0] for n in near] == [int(t.face_ids[j]) for j in np.argsort(d[row], kind="stable")[:len(near)]]
        assert [n[1] for n in near] == sorted(n[1] for n in near)


def test_thumbnail_square_leaves_the_photo_grey():
    pixels = np.zeros((100, 100, 3), np.uint8) + 200
    square = square_around((0, 0, 40, 40), 1.0, 100, 100)
    assert square[0] < 0 and square[1] < 0
    img = np.asarray(cut(pixels, square))
    assert tuple(img[2, 2]) == (128, 128, 128) and tuple(img[-10, -10]) == (200, 200, 200)
    # boxes are in source pixels; a photo decoded at half size halves them
    assert square_around((10, 10, 50, 50), 2.0, 50, 50) == (0, 0, 30, 30)


def test_spread_is_the_root_mean_squared_distance_between_faces():
    x = np.random.default_rng(1).normal(size=(7, 4))
    pairs = [np.sum((x[i] - x[j]) ** 2) for i in range(7) for j in range(7) if i != j]
    assert report_html.spread(x) == pytest.approx(np.sqrt(np.mean(pairs)))
    assert report_html.spread(x[:1]) is None


def test_relative_photo_paths_link_from_where_the_run_was(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    synthetic_output(Path("out"), Path("pics"), n_photos=2, faces_per_photo=2, n_people=2)
    monkeypatch.chdir("/")
    r = write_report(tmp_path / "out")
    assert not r.thumbs_failed and r.thumbs_made == 4
    urls = [u for p in (tmp_path / "out" / "report").glob("person-*.html")
            for u in parse(p).urls if u.startswith("file:")]
    assert urls and all(Path(unquote(urlparse(u).path)).is_file() for u in urls)


def test_cli_report_and_its_refusals(output, tmp_path):
    out, _, _ = output
    cli = [sys.executable, "-m", "facedist.cli"]
    done = subprocess.run(cli + ["report", str(out), "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["index"] == str(out / "report" / "index.html")
    plain = subprocess.run(cli + ["report", str(out)], capture_output=True, text=True)
    assert plain.stdout.strip() == str(out / "report" / "index.html")
    assert "0 cut, 24 kept" in plain.stderr
    for args, code in ((["report", str(tmp_path / "nothing")], 2),
                       (["report", str(out), "--workers", "0"], 2)):
        bad = subprocess.run(cli + args, capture_output=True, text=True)
        assert bad.returncode == code and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_report_setting_is_checked():
    from facedist.config import Settings

    assert Settings().update({"report": True}).report is True
    with pytest.raises(ValueError, match="report takes true or false"):
        Settings().update({"report": "yes"})


def test_report_waits_for_no_one_while_a_run_writes(output):
    from facedist.store import OutputLock

    out, _, _ = output
    lock = OutputLock(out)  # a run going on
    try:
        busy = subprocess.run([sys.executable, "-m", "facedist.cli", "report", str(out)],
                              capture_output=True, text=True)
    finally:
        lock.release()
    assert busy.returncode == 6 and "report" not in {p.name for p in out.iterdir()}, busy.stderr


def test_lookalikes_from_the_run_equal_those_computed_and_follow_corrections(output):
    out, _, _ = output
    db = open_db(out)

    def pairs() -> list[tuple]:
        w = report_html.ReportWriter(db, out / "report")
        w.gather()
        return [(round(d, 4), a.face_id, b.face_id) for d, a, b in w.pairs]

    from_run = pairs()
    (out / "lookalikes.csv").rename(out / "kept.csv")
    assert pairs() == from_run and len(from_run) >= 3  # a pair of people once
    (out / "kept.csv").rename(out / "lookalikes.csv")
    people = db.people()
    db.merge_people(people[0].id, people[1].id)  # rewrites lookalikes.csv
    merged = pairs()
    (out / "lookalikes.csv").unlink()
    assert pairs() == merged != from_run


def test_a_run_without_faces_gives_a_report_that_says_so(tmp_path):
    out = tmp_path / "out"
    synthetic_output(out, tmp_path / "photos", n_photos=0, faces_per_photo=0, n_people=1,
                     bad_files={"x.jpg": b"x"})
    r = write_report(out)
    assert (r.faces, r.people, r.thumbs_made) == (0, 0, 0)
    text = "".join(parse(out / "report" / "index.html").text)
    assert "No two people to compare" in text and "x.jpg" in text
    assert "No distances yet" in text


def test_unclear_and_ignored_faces_stand_apart(output):
    """Faces under the quality gate that joined nobody are on the unclear page only; an
    ignored face is on no page; neither is in a look-alike; every face shows its quality."""
    out, _, _ = output
    db = open_db(out)
    t = db.faces()
    unclear, ignored = [int(f) for f in t.face_ids[[0, 5]]], int(t.face_ids[9])
    writer = FaceStore(out)  # the reader's own connection is read-only
    writer.set_quality(np.array(unclear), np.array([0.05, 0.2]))
    writer.unplace(db.pipeline_key, unclear)
    writer.close()
    db.ignore_face(ignored)
    status = {int(r["face_id"]): r["status"] for r in csv_rows(out / "faces.csv")}
    assert [status[f] for f in unclear] == ["unclear", "unclear"] and status[ignored] == "ignored"
    assert sum(s == "" for s in status.values()) == len(t) - 3
    write_report(out)
    root = out / "report"

    def faces_on(page: Path) -> set[int]:
        return {int(a["alt"].split()[-1]) for tag, a in parse(page).tags
                if tag == "img" and a.get("alt", "").startswith("face ")}

    assert faces_on(root / "unclear.html") == set(unclear)
    text = "".join(parse(root / "unclear.html").text)
    assert "q 0.20" in text and "q 0.05" in text  # best first: 0.20 before 0.05
    assert text.index("q 0.20") < text.index("q 0.05")
    for page in root.glob("*.html"):
        shown = faces_on(page)
        assert ignored not in shown, page.name
        if page.name.startswith(("person-", "people", "lookalikes")):
            assert not shown & set(unclear), page.name
    index = "".join(parse(root / "index.html").text)
    assert re.search(r"unclear faces\s*2\s*\(1 ignored\)", index)
    looks = csv_rows(out / "lookalikes.csv")
    assert looks and not {int(r[k]) for r in looks for k in ("face_a", "face_b")} & {*unclear, ignored}


def csv_rows(path: Path) -> list[dict]:
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# -- the report's folder holds only what facedist wrote (issue 35) -----------------------------
MANIFEST = ".facedist-report.json"


def users_files(root: Path) -> dict[str, bytes]:
    """Files of the user's own in a folder a report is written to: names a report also uses
    (an .html page, data/*.js, thumbs/) and others."""
    files = {"notes.html": b"<p>mine</p>", "person-99999.html": b"my page", "data/x.js": b"var x;",
             "thumbs/photo.jpg": b"\xff\xd8 my photo", "thumbs/00/gone.jpg": b"x",
             "holiday/list.txt": b"a list", "readme.txt": b"hello"}
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def unchanged(root: Path, files: dict[str, bytes]) -> bool:
    return all((root / n).is_file() and (root / n).read_bytes() == b for n, b in files.items())


def test_report_dest_refuses_a_folder_of_the_users_own_and_changes_nothing(output, tmp_path):
    from conftest import facedist_main, tree_state

    out, _, _ = output
    mine = tmp_path / "my folder"
    mine.mkdir()
    files = users_files(mine)
    before = tree_state(mine)
    code, stdout, stderr = facedist_main("report", out, "--dest", mine)
    assert code == 2 and len(stderr.strip().splitlines()) == 1, stderr
    assert str(mine) in stderr and "no facedist report" in stderr
    assert tree_state(mine) == before and unchanged(mine, files)
    # the run's own report folder, the same: refused, nothing deleted
    default = out / "report"
    default.mkdir()
    (default / "mine.html").write_text("mine")
    code, _, stderr = facedist_main("report", out)
    assert code == 2 and (default / "mine.html").read_text() == "mine"
    assert [p.name for p in default.iterdir()] == ["mine.html"], stderr


def test_a_report_removes_its_own_stale_files_and_nothing_else(output, tmp_path):
    out, _, _ = output
    dest = tmp_path / "shared report"
    first = write_report(out, dest)
    written = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    listed = json.loads((dest / MANIFEST).read_text()) if (dest / MANIFEST).exists() else None
    files = users_files(dest)
    db = open_db(out)
    gone = db.people()[1].id
    db.merge_people(db.people()[0].id, gone)  # person-GONE.html is no longer written
    db.close()
    # a thumbnail the review page cut into the folder (named as facedist names them), no face's
    review_thumb = dest / "thumbs" / "ab" / ("c" * 18 + ".jpg")
    review_thumb.parent.mkdir(parents=True, exist_ok=True)
    review_thumb.write_bytes(b"\xff\xd8")
    assert (dest / f"person-{gone}.html").is_file()
    again = write_report(out, dest)
    assert again.thumbs_kept == first.thumbs_made and again.people == first.people - 1
    assert not (dest / f"person-{gone}.html").exists() and not review_thumb.exists()
    assert unchanged(dest, files)
    assert listed["complete"] and set(listed["files"]) == written - {MANIFEST}
    manifest = json.loads((dest / MANIFEST).read_text())
    assert manifest["complete"] and all((dest / f).is_file() for f in manifest["files"])
    assert all(report_html.OWN_NAME.fullmatch(f) for f in manifest["files"])


def test_a_report_written_before_manifests_is_taken_over_keeping_the_rest(output):
    """An output made by an earlier facedist: OUT/report full of the report's files, without a
    manifest. Its files (those named as facedist names them) are taken for facedist's own;
    anything else in it stays."""
    out, _, _ = output
    root = out / "report"
    write_report(out)
    (root / MANIFEST).unlink(missing_ok=True)
    (root / "person-99999.html").write_text(
        (root / "person-99999.html").read_text() if (root / "person-99999.html").exists()
        else "<!doctype html><title>facedist report</title>")
    (root / "notes.txt").write_text("mine")
    (root / "data" / "mine.js").write_text("var mine;")
    r = write_report(out)
    assert r.index.is_file() and (root / MANIFEST).is_file()
    assert not (root / "person-99999.html").exists()  # a page of facedist's naming, stale
    assert (root / "notes.txt").read_text() == "mine"
    assert (root / "data" / "mine.js").read_text() == "var mine;"


def test_the_review_pages_thumbnails_alone_do_not_block_the_report(output):
    out, _, _ = output
    thumb = out / "report" / "thumbs" / "ab" / ("d" * 18 + ".jpg")
    thumb.parent.mkdir(parents=True)
    thumb.write_bytes(b"\xff\xd8")
    assert write_report(out).index.is_file()


def report_state(out: Path) -> str | None:
    store = FaceStore(out, create=False, readonly=True)
    try:
        return store.run_record(store.last_run()["id"])["summary"].get("report")
    finally:
        store.close()


def interrupt_after(monkeypatch, pages: int) -> None:
    """Ctrl-C as the report writes its page number `pages` + 1."""
    real, done = report_html.ReportWriter._render, []

    def render(self, name, template, **values):
        if len(done) == pages:
            raise KeyboardInterrupt
        done.append(name)
        real(self, name, template, **values)

    monkeypatch.setattr(report_html.ReportWriter, "_render", render)


def test_ctrl_c_during_the_report_is_recorded_and_the_next_report_finishes_it(output, monkeypatch):
    from conftest import facedist_main

    out, _, _ = output
    root = out / "report"
    interrupt_after(monkeypatch, 3)
    code, _, stderr = facedist_main("report", out, "-q")
    assert code == 130 and len(stderr.strip().splitlines()) == 1, stderr
    assert report_state(out) == "incomplete" and not (root / "index.html").exists()
    assert not json.loads((root / MANIFEST).read_text())["complete"]
    monkeypatch.undo()
    code, _, stderr = facedist_main("report", out, "-q")
    assert code == 0, stderr
    assert report_state(out) == "complete" and (root / "index.html").is_file()
    links = parse(root / "index.html").urls
    assert all((root / u.split("#")[0]).is_file() for u in links
               if not u.startswith("file:") and u.split("#")[0])


def test_ctrl_c_during_run_report_keeps_the_earlier_index_and_says_so(output, monkeypatch, caplog):
    """`run --report` writes the report after the run is recorded finished (pipeline's
    _write_report): interrupted, the record says the report is incomplete and the earlier
    report's index.html stays; the next report finishes it."""
    from facedist import pipeline
    from facedist.config import Settings
    from facedist.store import writing

    out, photos, _ = output
    write_report(out)
    index = (out / "report" / "index.html").read_bytes()
    interrupt_after(monkeypatch, 1)
    settings = Settings(photos=photos, out=out, progress=False)
    with writing(out, "run") as store, pytest.raises(KeyboardInterrupt):
        pipeline._write_report(settings, out, store)
    assert report_state(out) == "incomplete"
    assert (out / "report" / "index.html").read_bytes() == index
    monkeypatch.undo()
    with writing(out, "run") as store:
        assert pipeline._write_report(settings, out, store).is_file()
    assert report_state(out) == "complete"


def test_a_run_after_an_interrupted_report_says_so_until_a_report_is_written(output, monkeypatch,
                                                                             caplog, tmp_path):
    from facedist import pipeline
    from facedist.config import Settings
    from facedist.monitor import Monitor

    class NoEngine:  # nothing to process: an empty photo folder
        def process(self, todo, *args):
            assert not todo

        def close(self):
            pass

    out, _, _ = output
    interrupt_after(monkeypatch, 0)
    with pytest.raises(KeyboardInterrupt):
        write_report(out)
    monkeypatch.undo()
    empty = tmp_path / "no photos"
    empty.mkdir()
    settings = Settings(photos=empty, out=out, progress=False, weights="synthetic")
    with caplog.at_level("WARNING", logger="facedist"):
        pipeline.run(settings, Monitor(0.05), NoEngine())
    assert report_state(out) == "incomplete"  # the new run's record says it too
    assert f"facedist report {out} finishes it" in caplog.text
    write_report(out)
    assert report_state(out) == "complete"


def test_a_manifest_naming_files_not_of_the_reports_naming_deletes_none_of_them(output, tmp_path):
    out, _, _ = output
    dest = tmp_path / "report"
    write_report(out, dest)
    outside = tmp_path / "outside.html"
    outside.write_text("mine")
    (dest / "notes.html").write_text("mine")
    (dest / MANIFEST).write_text(json.dumps({"files": ["../outside.html", "notes.html", "/x"]}))
    write_report(out, dest)
    assert outside.read_text() == "mine" and (dest / "notes.html").read_text() == "mine"


def test_run_report_into_a_report_folder_of_the_users_own_is_refused_before_the_run(
        output, monkeypatch):
    from facedist import pipeline
    from facedist.config import Settings
    from facedist.errors import SettingError

    class NoEngine:
        def __init__(self, settings):
            pass

        def process(self, todo, *args):
            raise AssertionError("the run went on")

        def close(self):
            pass

    out, photos, _ = output
    (out / "report").mkdir()
    (out / "report" / "mine.html").write_text("mine")
    runs = FaceStore(out, create=False, readonly=True).db.execute("SELECT count(*) FROM runs")
    before = runs.fetchone()[0]
    monkeypatch.setattr(pipeline, "LocalEngine", NoEngine)
    with pytest.raises(SettingError, match="no facedist report"):
        pipeline.run(Settings(photos=photos, out=out, progress=False, report=True))
    runs = FaceStore(out, create=False, readonly=True).db.execute("SELECT count(*) FROM runs")
    assert runs.fetchone()[0] == before and (out / "report" / "mine.html").read_text() == "mine"
