"""xmp.py: names travel as XMP face regions. The XML parts alone (fast, no shared data), then
end to end on the labeled photos with exiftool as the independent reader and writer (slow)."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import LABELED, SHARED, facedist_main, in_ci
from facedist import xmp
from facedist.xmp import MalformedXMP, Region, merged_sidecar, parse_regions

# as exiftool writes them: element form, each namespace in a Description of its own
EXIFTOOL_STYLE = b"""<?xpacket begin='\xef\xbb\xbf' id='W5M0MpCehiHzreSzNTczkc9d'?>
<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>
 <rdf:Description rdf:about='' xmlns:dc='http://purl.org/dc/elements/1.1/'>
  <dc:subject><rdf:Bag><rdf:li>holiday</rdf:li></rdf:Bag></dc:subject></rdf:Description>
 <rdf:Description rdf:about='' xmlns:mwg-rs='http://www.metadataworkinggroup.com/schemas/regions/'
   xmlns:stArea='http://ns.adobe.com/xmp/sType/Area#'>
  <mwg-rs:Regions rdf:parseType='Resource'><mwg-rs:RegionList><rdf:Bag>
   <rdf:li rdf:parseType='Resource'>
    <mwg-rs:Area rdf:parseType='Resource'><stArea:h>0.3</stArea:h><stArea:unit>normalized</stArea:unit>
     <stArea:w>0.2</stArea:w><stArea:x>0.5</stArea:x><stArea:y>0.4</stArea:y></mwg-rs:Area>
    <mwg-rs:Name>Ana</mwg-rs:Name><mwg-rs:Type>Face</mwg-rs:Type></rdf:li>
   <rdf:li rdf:parseType='Resource'>
    <mwg-rs:Area rdf:parseType='Resource'><stArea:h>0.1</stArea:h><stArea:unit>normalized</stArea:unit>
     <stArea:w>0.1</stArea:w><stArea:x>0.1</stArea:x><stArea:y>0.1</stArea:y></mwg-rs:Area>
    <mwg-rs:Name>the dog</mwg-rs:Name><mwg-rs:Type>Pet</mwg-rs:Type></rdf:li>
  </rdf:Bag></mwg-rs:RegionList></mwg-rs:Regions></rdf:Description>
</rdf:RDF></x:xmpmeta><?xpacket end='w'?>"""

# as exiv2 (digiKam) writes them: struct fields as attributes, rdf:Description inside
DIGIKAM_STYLE = b"""<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF
 xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about=""
 xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/"
 xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#"
 xmlns:MP="http://ns.microsoft.com/photo/1.2/"
 xmlns:MPRI="http://ns.microsoft.com/photo/1.2/t/RegionInfo#"
 xmlns:MPReg="http://ns.microsoft.com/photo/1.2/t/Region#">
 <mwg-rs:Regions><rdf:Description><mwg-rs:RegionList><rdf:Bag>
  <rdf:li><rdf:Description mwg-rs:Name="Bo" mwg-rs:Type="Face">
   <mwg-rs:Area stArea:x="0.25" stArea:y="0.5" stArea:w="0.1" stArea:h="0.2" stArea:unit="normalized"/>
  </rdf:Description></rdf:li></rdf:Bag></mwg-rs:RegionList></rdf:Description></mwg-rs:Regions>
 <MP:RegionInfo rdf:parseType="Resource"><MPRI:Regions><rdf:Bag>
  <rdf:li MPReg:Rectangle="0.2, 0.4, 0.1, 0.2" MPReg:PersonDisplayName="Bo"/>
  <rdf:li MPReg:Rectangle="0.6, 0.1, 0.2, 0.2" MPReg:PersonDisplayName="Cy"/>
 </rdf:Bag></MPRI:Regions></MP:RegionInfo>
</rdf:Description></rdf:RDF></x:xmpmeta>"""


def test_mwg_regions_in_exiftool_form_are_read_and_other_kinds_are_not():
    assert parse_regions(EXIFTOOL_STYLE) == [Region("Ana", 0.5, 0.4, 0.2, 0.3)]


def test_attribute_form_and_microsoft_regions_are_read_without_repeating_mwg():
    regions = parse_regions(DIGIKAM_STYLE)
    # Bo's MP rectangle (top-left 0.2, 0.4) is MWG's centred area: given once; Cy only in MP
    assert [(r.name, round(r.x, 6), round(r.y, 6), r.w, r.h) for r in regions] == [
        ("Bo", 0.25, 0.5, 0.1, 0.2), ("Cy", 0.7, 0.2, 0.2, 0.2)]


@pytest.mark.parametrize("data", [b"<x:xmpmeta", b"not xml at all",
                                  EXIFTOOL_STYLE.replace(b"<stArea:x>0.5<", b"<stArea:x>half<")])
def test_malformed_xmp_raises_one_kind_of_error(data):
    with pytest.raises(MalformedXMP):
        parse_regions(data)


def test_a_malformed_sidecar_is_skipped_with_one_line_naming_it(tmp_path, caplog):
    photo = tmp_path / "a.jpg"
    Image.new("RGB", (40, 30)).save(photo)
    (tmp_path / "a.jpg.xmp").write_bytes(b"<x:xmpmeta><broken")
    (tmp_path / "a.xmp").write_bytes(EXIFTOOL_STYLE)
    with caplog.at_level(logging.WARNING, logger="facedist"):
        found = xmp.read_photo_regions(photo)
    assert found == [("a.xmp", Region("Ana", 0.5, 0.4, 0.2, 0.3))]
    [line] = [r.getMessage() for r in caplog.records]
    assert "a.jpg.xmp: malformed XMP" in line and "\n" not in line


def test_embedded_xmp_of_a_jpeg_is_read(tmp_path):
    photo = tmp_path / "a.jpg"
    Image.new("RGB", (40, 30)).save(photo, xmp=EXIFTOOL_STYLE)
    assert xmp.read_photo_regions(photo) == [("embedded", Region("Ana", 0.5, 0.4, 0.2, 0.3))]


def test_a_merge_keeps_what_is_not_facedists_and_a_second_adds_no_duplicate():
    mine = [Region("Dee", 0.3, 0.3, 0.1, 0.1, person=4)]
    once = merged_sidecar(EXIFTOOL_STYLE, mine, 100, 50)
    twice = merged_sidecar(once, [Region("Dee", 0.31, 0.3, 0.1, 0.1, person=4)], 100, 50)
    assert b"holiday" in twice and b"the dog" in twice  # others' tags and regions kept
    names = [r.name for r in parse_regions(twice)]
    assert sorted(names) == ["Ana", "Dee"]
    assert [r.x for r in parse_regions(twice) if r.name == "Dee"] == [0.31]
    assert twice.count(b"Dee") == 2  # once in MWG, once in MP


def test_facedists_region_with_its_mark_dropped_is_still_replaced():
    once = merged_sidecar(None, [Region("Dee", 0.3, 0.3, 0.1, 0.1, person=4)], 100, 50)
    unmarked = once.replace(b"<facedist:Person>4</facedist:Person>", b"")
    twice = merged_sidecar(unmarked, [Region("Dee", 0.3, 0.3, 0.1, 0.1, person=4)], 100, 50)
    assert [r.name for r in parse_regions(twice)] == ["Dee"]


def test_a_region_names_the_face_it_overlaps_by_half():
    boxes = np.array([[10, 10, 30, 30], [60, 10, 80, 30]], np.float32)  # in a 100 x 50 photo
    on_second = Region("B", 0.7, 0.4, 0.2, 0.4)
    wide = Region("W", 0.2, 0.4, 0.2 * 1.5, 0.4 * 1.5)  # 1.5 times the face: IoU 0.44
    nowhere = Region("N", 0.5, 0.9, 0.05, 0.1)
    assert xmp.match_regions([on_second, wide, nowhere], boxes, 100, 50) == [1, None, None]


def test_sidecar_names_never_name_the_photo():
    assert xmp.sidecar_path("d/a.jpg", "photo.jpg.xmp") == Path("d/a.jpg.xmp")
    assert xmp.sidecar_path("d/a.jpg", "photo.xmp") == Path("d/a.xmp")


def test_tags_is_a_checked_setting():
    from facedist.config import Settings

    assert Settings().update({"tags": False}).tags is False
    with pytest.raises(ValueError, match="tags"):
        Settings().update({"tags": "sometimes"})


# -- end to end, exiftool the independent reader and writer --------------------------------
def exiftool() -> str:
    path = shutil.which("exiftool")
    if path is None:
        if in_ci():
            pytest.fail("exiftool is missing in CI (tools/install-exiftool)", pytrace=False)
        pytest.skip("exiftool is not installed (tools/install-exiftool)")
    return path


def read_with_exiftool(*paths: Path) -> list[dict]:
    out = subprocess.run([exiftool(), "-j", "-struct", "-r", "-ext", "xmp", *map(str, paths)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.jpg"))}


def run(photos: Path, out: Path):
    from facedist.api import run as facedist_run

    return facedist_run(photos, out, model="dlib-resnet", device="cpu", progress=False)


def names_after_a_fresh_run(photos: Path, sidecars: Path, tmp_path: Path):
    """A fresh run over a copy of `photos` with the `sidecars` beside them: ({(path under the
    copy, face index): name} of every named face, its FaceDB)."""
    from facedist.api import open_db

    fresh = tmp_path / "fresh"
    shutil.copytree(photos, fresh)
    shutil.copytree(sidecars, fresh, dirs_exist_ok=True)
    run(fresh, tmp_path / "out2")
    db = open_db(tmp_path / "out2")
    t = db.faces()
    person, names = db.person_of(t), db.store.person_names(db.pipeline_key)
    return ({(str(Path(t.paths[i]).relative_to(fresh)), int(t.face_index[i])): names[int(person[i])]
             for i in range(len(t)) if int(person[i]) in names}, db)


@pytest.mark.slow
def test_names_go_out_to_sidecars_and_come_back_in_a_fresh_run(tmp_path):
    from facedist.api import open_db

    photos = tmp_path / "photos"
    shutil.copytree(LABELED / "people", photos)
    run(photos, tmp_path / "out")
    db = open_db(tmp_path / "out")
    t = db.faces()
    person = db.person_of(t)
    for p in sorted(set(person[person >= 0].tolist())):  # each person: its photos' folder
        folders = [Path(path).parent.name for path, q in zip(t.paths, person) if q == p]
        db.name_person(p, max(set(folders), key=folders.count))
    names = db.store.person_names(db.pipeline_key)
    want = {(str(Path(t.paths[i]).relative_to(photos)), int(t.face_index[i])): names[int(person[i])]
            for i in range(len(t)) if person[i] >= 0}
    before = hashes(photos)

    code, out, err = facedist_main("export", tmp_path / "out", "--xmp", "--dest", tmp_path / "xmp")
    assert code == 0, err
    sizes = db.store.image_sizes()
    listed = read_with_exiftool(tmp_path / "xmp")
    assert len(listed) == len({path for path, _ in want})
    for sidecar in listed:
        photo = photos / Path(sidecar["SourceFile"]).relative_to(tmp_path / "xmp").with_suffix("")
        w, h = sizes[str(photo)]
        regions = sidecar["RegionInfo"]["RegionList"]
        rows = [i for i, p in enumerate(t.paths) if p == str(photo) and person[i] >= 0]
        assert len(regions) == len(rows)  # a face of nobody (unclear) has no name to give
        for region, i in zip(regions, rows):  # each region: its face's name and box, within 1%
            x1, y1, x2, y2 = np.clip(t.boxes[i], 0, [w, h, w, h])
            a = region["Area"]
            assert region["Name"] == names[int(person[i])] and region["Type"] == "Face"
            assert a["Unit"] == "normalized"
            assert abs(a["X"] - (x1 + x2) / 2 / w) < 0.01 and abs(a["Y"] - (y1 + y2) / 2 / h) < 0.01
            assert abs(a["W"] - (x2 - x1) / w) < 0.01 and abs(a["H"] - (y2 - y1) / h) < 0.01
        assert sidecar["RegionInfo"]["AppliedToDimensions"] == {"W": w, "H": h, "Unit": "pixel"}
        assert [r["PersonDisplayName"] for r in sidecar["RegionInfoMP"]["Regions"]] == [
            r["Name"] for r in regions]

    # a fresh run over a copy of the photos with those sidecars beside them: the same names,
    # and not one correction given by hand
    got, db2 = names_after_a_fresh_run(photos, tmp_path / "xmp", tmp_path)
    assert got == want
    assert db2.store.answers(db2.pipeline_key) == 0
    assert {r["outcome"] for r in db2.tags()} <= {"named", "agrees"}

    # beside the photos: an existing sidecar's other tags kept; a second export adds nothing
    first = next(iter(sorted(want)))[0]
    subprocess.run([exiftool(), "-q", "-XMP-dc:Subject=holiday", "-XMP-mwg-rs:RegionInfo={"
                    "RegionList=[{Area={X=0.1,Y=0.1,W=0.05,H=0.05,Unit=normalized},"
                    "Name=Someone Else,Type=Face}]}", str(photos / (first + ".xmp"))], check=True)
    for _ in range(2):
        code, _, err = facedist_main("export", tmp_path / "out", "--xmp", "--in-place")
        assert code == 0, err
    [kept] = read_with_exiftool(photos / (first + ".xmp"))
    assert kept["Subject"] == ["holiday"]
    regions = [r["Name"] for r in kept["RegionInfo"]["RegionList"]]
    assert "Someone Else" in regions
    assert len(regions) == 1 + sum(1 for path, _ in want if path == first)
    assert hashes(photos) == before  # no photo written, ever

    # a photo moved: its sidecar goes to its new place
    moved = photos / "moved.jpg"
    (photos / first).rename(moved)
    run(photos, tmp_path / "out")
    code, _, err = facedist_main("export", tmp_path / "out", "--xmp", "--dest", tmp_path / "xmp2",
                                 "--sidecar-name", "photo.xmp")
    assert code == 0, err
    assert (tmp_path / "xmp2" / "moved.xmp").is_file()


@pytest.mark.slow
def test_an_albums_names_go_out_and_come_back(tmp_path):
    """A family album's slice (D1: four family people, all their photos, and 12 strangers),
    its people named as the album's owner would (the family by name, strangers not): exported
    as sidecars, read back by exiftool with every name, and a fresh run over the photos with
    their sidecars ends with the same names on the same faces, no correction given."""
    from facedist.api import open_db

    album = SHARED / "data" / "albums" / "D1"
    with open(album / "truth.csv", newline="") as fh:
        truth = {r["file"]: r for r in csv.DictReader(fh)}
    family = sorted({r["person"] for r in truth.values() if r["role"] == "family"})[:4]
    strangers = sorted(f for f, r in truth.items() if r["role"] == "stranger")[:12]
    photos = tmp_path / "photos"
    photos.mkdir()
    for f, r in truth.items():
        if r["person"] in family or f in strangers:
            shutil.copyfile(album / "photos" / f, photos / f)
    run(photos, tmp_path / "out")
    db = open_db(tmp_path / "out")
    t = db.faces()
    person = db.person_of(t)
    for p in sorted(set(person[person >= 0].tolist())):  # the owner names their family
        who = [truth[Path(path).name]["person"] for path, q in zip(t.paths, person) if q == p]
        top = max(set(who), key=who.count)
        if top in family and who.count(top) > len(who) / 2:
            db.name_person(p, top.replace("_", " "))
    names = db.store.person_names(db.pipeline_key)
    want = {(Path(t.paths[i]).name, int(t.face_index[i])): names[int(person[i])]
            for i in range(len(t)) if int(person[i]) in names}
    assert len({n for n in want.values()}) == 4
    code, _, err = facedist_main("export", tmp_path / "out", "--xmp", "--dest", tmp_path / "xmp")
    assert code == 0, err
    read = {(Path(s["SourceFile"]).name[:-len(".xmp")], r["Name"])
            for s in read_with_exiftool(tmp_path / "xmp") for r in s["RegionInfo"]["RegionList"]}
    assert read == {(f, n) for (f, _), n in want.items()}
    got, db2 = names_after_a_fresh_run(photos, tmp_path / "xmp", tmp_path)
    assert got == want and db2.store.answers(db2.pipeline_key) == 0


def rotated(upright: Image.Image, orientation: int, path: Path) -> Path:
    """A copy whose stored pixels are turned so that EXIF `orientation` displays `upright`."""
    turn = {1: None, 3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90,
            8: Image.Transpose.ROTATE_270}[orientation]
    stored = upright if turn is None else upright.transpose(turn)
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, quality=95, exif=exif)
    return path


@pytest.mark.slow
def test_regions_written_by_exiftool_name_the_right_faces_at_every_orientation(tmp_path, caplog):
    from facedist.api import analyze, open_db

    source = LABELED / "groups" / "obama_and_biden.jpg"
    upright = Image.open(source).convert("RGB")
    w, h = upright.size
    found = analyze(source, model="dlib-resnet", device="cpu")  # largest first
    assert len(found) >= 2
    faces = sorted(found[:2], key=lambda f: f.box[0])
    # the left face and the right one: their names, as centred areas in the displayed photo
    areas = [((f.box[0] + f.box[2]) / 2 / w, (f.box[1] + f.box[3]) / 2 / h,
              (f.box[2] - f.box[0]) / w, (f.box[3] - f.box[1]) / h) for f in faces]
    people = ["Left One", "Right One"]
    mwg = ("-XMP-mwg-rs:RegionInfo={AppliedToDimensions={W=%d,H=%d,Unit=pixel},RegionList=[" % (w, h)
           + ",".join("{Area={X=%f,Y=%f,W=%f,H=%f,Unit=normalized},Name=%s,Type=Face}" % (*a, n)
                      for a, n in zip(areas, people)) + "]}")
    mp = ("-XMP-MP:RegionInfoMP={Regions=[" + ",".join(
        "{Rectangle=%f|, %f|, %f|, %f,PersonDisplayName=%s}" % (a[0] - a[2] / 2, a[1] - a[3] / 2,
                                                                a[2], a[3], n)
        for a, n in zip(areas, people)) + "]}")
    photos = tmp_path / "photos"
    photos.mkdir()
    tool = exiftool()
    # digiKam's naming (MWG), Lightroom's (MWG), Microsoft's regions, and the photo's own XMP
    for orientation, tags, where in [(1, mwg, "o1.jpg.xmp"), (3, mwg, "o3.xmp"),
                                     (6, mp, "o6.jpg.xmp"), (8, mwg, "o8.jpg")]:
        rotated(upright, orientation, photos / f"o{orientation}.jpg")
        subprocess.run([tool, "-q", "-overwrite_original", tags, str(photos / where)], check=True)
    (photos / "o1.xmp").write_bytes(b"<x:xmpmeta><rdf:RDF>")  # malformed, beside o1.jpg too
    before = hashes(photos)
    with caplog.at_level(logging.WARNING, logger="facedist"):
        run(photos, tmp_path / "out")
    [line] = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert line.startswith(f"{photos / 'o1.xmp'}: malformed XMP, its face regions skipped (")
    db = open_db(tmp_path / "out")
    t = db.faces()
    person, names = db.person_of(t), db.store.person_names(db.pipeline_key)
    sizes = db.store.image_sizes()
    for orientation in (1, 3, 6, 8):
        path = str(photos / f"o{orientation}.jpg")
        rows = [i for i in range(len(t)) if t.paths[i] == path]
        assert sizes[path] == (w, h)  # as displayed
        for face, name in zip(faces, people):  # the face at that place, in the displayed photo
            i = max(rows, key=lambda i: xmp.iou(t.boxes[i], face.box))
            assert xmp.iou(t.boxes[i], face.box) > 0.8, orientation
            assert names.get(int(person[i])) == name, orientation
    assert {r["outcome"] for r in db.tags()} <= {"named", "agrees"}
    assert hashes(photos) == before
    # --no-tags: none read
    code, _, err = facedist_main("run", photos, "--out", tmp_path / "off", "--no-tags",
                                 "--no-progress", "-q")
    assert code == 0, err
    assert open_db(tmp_path / "off").store.person_names(db.pipeline_key) == {}


@pytest.mark.slow
def test_regions_on_no_face_and_disagreeing_names_are_listed_not_applied(tmp_path):
    from facedist.api import open_db

    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(LABELED / "people" / "obama" / "obama_1.jpg", photos / "a.jpg")
    shutil.copy(LABELED / "people" / "obama" / "obama_2.jpg", photos / "b.jpg")
    run(photos, tmp_path / "out")
    db = open_db(tmp_path / "out")
    t = db.faces()
    sizes = db.store.image_sizes()
    regions = {}
    for i, path in enumerate(t.paths):
        r = xmp.face_region(t.boxes[i], *sizes[path], "Barack", 0)
        regions[path] = [Region(r.name, r.x, r.y, r.w, r.h)]
    regions[str(photos / "b.jpg")] += [Region("Michelle", *(regions[str(photos / "b.jpg")][0].x,
                                                            regions[str(photos / "b.jpg")][0].y,
                                                            regions[str(photos / "b.jpg")][0].w,
                                                            regions[str(photos / "b.jpg")][0].h)),
                                       Region("Nobody", 0.05, 0.05, 0.04, 0.04)]
    for path, rs in regions.items():
        Path(path + ".xmp").write_bytes(merged_sidecar(None, rs, *sizes[path]))
    run(photos, tmp_path / "out")
    db = open_db(tmp_path / "out")
    outcomes = {(Path(r["path"]).name, r["name"]): r["outcome"] for r in db.tags()}
    assert outcomes == {("a.jpg", "Barack"): "named", ("b.jpg", "Barack"): "conflict",
                        ("b.jpg", "Michelle"): "conflict", ("b.jpg", "Nobody"): "unmatched"}
    code, out, err = facedist_main("people", tmp_path / "out", "tags")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and rows[0]["outcome"] == "conflict" and rows[0]["note"] == (
        'names "Barack" and "Michelle" on one face: correct it in facedist or in the photo\'s XMP')
    assert "disagree" in err


# -- names the photos carry and facedist could not apply: asked in the review ------------------
def tagged_output(tmp_path, tags: dict[int, list[str]], names=None):
    """A generated output (synthetic.review_output: three pairs of people, three faces each)
    whose photos carry sidecars as digiKam writes them: `tags` maps a person's index to the
    names on its last face; read as a run reads them (xmp.read_tags). Returns (out, people)."""
    from facedist.store import writing
    from synthetic import KEY, review_output

    out = tmp_path / "out"
    people = review_output(out, tmp_path / "photos", pairs=3, faces=3, names=names)["people"]
    with writing(out, "run") as store:
        t = store.faces(KEY)
        sizes = store.image_sizes()
        last = {store.face_people([f])[f][0]: i for i, f in enumerate(t.face_ids.tolist())}
        for g, said in tags.items():
            i = last[people[g]]
            path = t.paths[i]
            r = xmp.face_region(t.boxes[i], *sizes[path], "x", 0)
            regions = [Region(name, r.x, r.y, r.w, r.h) for name in said]
            Path(path + ".xmp").write_bytes(merged_sidecar(None, regions, *sizes[path]))
        xmp.read_tags(store, KEY, t, sorted(set(t.paths)))
    return out, people


def test_one_name_on_people_kept_apart_is_asked_first_and_merged_by_yes(tmp_path):
    from facedist.facedb import FaceDB

    # person 0 is "Ana" in facedist; the photos call a face of person 2 (far from 0) "Ana" too
    out, people = tagged_output(tmp_path, {2: ["Ana"]}, names={0: "Ana"})
    db = FaceDB(out)
    assert {r["outcome"] for r in db.tags()} == {"apart"}
    qid = f"same:{min(people[0], people[2])}:{max(people[0], people[2])}"
    first = db.review_questions(5)[0]
    assert (first.id, first.kind) == (qid, "same") and "Ana" in first.reason
    assert first.value < max(q.value for q in db.review_questions(5))  # first for the tag alone
    db.answer(qid, "yes")
    assert qid not in [q.id for q in db.review_questions(50)]
    named = [p for p in db.people() if p.name == "Ana"]
    assert len(named) == 1 and named[0].faces == 6  # one Ana, the name kept
    db.close()


def test_one_name_on_people_kept_apart_answered_no_stays_apart_and_is_not_asked_again(tmp_path):
    from facedist.facedb import FaceDB

    out, people = tagged_output(tmp_path, {2: ["Ana"]}, names={0: "Ana"})
    db = FaceDB(out)
    qid = db.review_questions(1)[0].id
    assert qid == f"same:{min(people[0], people[2])}:{max(people[0], people[2])}"
    db.answer(qid, "no")
    assert qid not in [q.id for q in db.review_questions(50)]
    assert qid not in [q.id for q in FaceDB(out).review_questions(50)]  # a new reader too
    assert sorted(p.faces for p in db.people() if p.name == "Ana") == [3, 3]
    db.close()
    # `people apart`, given on the command line instead, settles it as well
    out2, people = tagged_output(tmp_path / "2", {2: ["Ana"]}, names={0: "Ana"})
    code, _, err = facedist_main("people", out2, "apart", str(people[0]), str(people[2]))
    assert code == 0, err
    code, listed, err = facedist_main("people", out2, "review", "--json")
    assert code == 0 and qid not in [q["question"] for q in json.loads(listed)]


def test_two_names_on_one_face_ask_who_it_is_first_with_those_names(tmp_path):
    from facedist.facedb import FaceDB

    # person 5 is "Bea" in facedist; one face of person 2 is tagged both "Ana" and "Bea"
    out, people = tagged_output(tmp_path, {2: ["Ana", "Bea"]}, names={5: "Bea"})
    db = FaceDB(out)
    assert {r["outcome"] for r in db.tags()} == {"conflict"}
    first = db.review_questions(5)[0]
    assert (first.id, first.kind) == (f"who:{people[2]}", "who")
    assert first.names == ["Ana", "Bea"] and '"Ana" and "Bea"' in first.reason
    assert [s[:2] for s in first.suggestions] == [(people[5], "Bea")]
    code, listed, err = facedist_main("people", out, "review", "-n", "1", "--json")
    assert code == 0 and json.loads(listed)[0]["question"] == first.id, err
    assert "Ana" in json.loads(listed)[0]["reason"]
    from facedist.review_server import ReviewApp

    app = ReviewApp(out)  # the page shows why, the names, and the face they are on first
    try:
        shown = app.state(1)["questions"][0]
    finally:
        app.close()
    assert shown["names"] == ["Ana", "Bea"] and shown["reason"] == first.reason
    assert shown["left"]["show"][0] == first.face
    code, _, err = facedist_main("people", out, "answer", first.id, "name=Ana")
    assert code == 0, err
    assert {p.name: p.faces for p in db.people() if p.name} == {"Ana": 3, "Bea": 3}
    assert first.id not in [q.id for q in db.review_questions(50)]
    db.close()
    # answered yes: the suggestion, the person named Bea, takes them
    out2, people = tagged_output(tmp_path / "2", {2: ["Ana", "Bea"]}, names={5: "Bea"})
    db = FaceDB(out2)
    db.answer(f"who:{people[2]}", "yes")
    assert {p.name: p.faces for p in db.people() if p.name} == {"Bea": 6}
    assert not any(q.reason for q in db.review_questions(50))
    db.close()
