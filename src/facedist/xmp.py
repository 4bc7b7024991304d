"""xmp: names travel with the photos, as XMP face regions (docs/xmp.md).

The photo managers people name their people in (digiKam, Lightroom Classic, Immich, exiftool)
read and write the Metadata Working Group's face regions: `mwg-rs:Regions`, a list of areas
(centre x, y and size w, h, normalised to the photo as displayed, after its EXIF orientation)
each with a `Type` (Face) and a `Name`; older Windows tools wrote Microsoft's `MP:RegionInfo`
(top-left x, y, w, h, normalised too). This module

- writes them into sidecars (`export --xmp`): photo.jpg.xmp (digiKam's naming) or photo.xmp
  (Lightroom's), never into a photo; an existing sidecar is merged, keeping everything that is
  not facedist's, and facedist's own regions (each marked `facedist:Person`) are replaced;
- reads them (`run`, unless --no-tags) from the photo's own XMP (read only) and from the
  sidecars beside it, and a region that matches a detected face names that face's person
  through the write path (people.Move, people.Name), in the run's transaction. A region that
  matches no face, and names that disagree with facedist or with one another, are stored
  (store: tag_regions) and listed (`facedist people OUT tags`), never applied silently;
  one name on people kept apart, and two names on one face, are asked in the review first
  (review.TagHint).

Standard library XML (xml.etree) with the XMP namespaces: no native dependency, and the
embedded packet comes from Pillow, which facedist decodes with already. Expat resolves no
external entity and refuses entity expansion bombs.
"""
from __future__ import annotations

import io
import logging
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger("facedist")

X = "adobe:ns:meta/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
MWG = "http://www.metadataworkinggroup.com/schemas/regions/"
AREA = "http://ns.adobe.com/xmp/sType/Area#"
DIM = "http://ns.adobe.com/xap/1.0/sType/Dimensions#"
MP = "http://ns.microsoft.com/photo/1.2/"
MPRI = "http://ns.microsoft.com/photo/1.2/t/RegionInfo#"
MPREG = "http://ns.microsoft.com/photo/1.2/t/Region#"
FACEDIST = "http://ns.facedist.org/xmp/1.0/"  # marks the regions facedist wrote (a name only)
PREFIXES = {"x": X, "rdf": RDF, "mwg-rs": MWG, "stArea": AREA, "stDim": DIM, "MP": MP,
            "MPRI": MPRI, "MPReg": MPREG, "facedist": FACEDIST}

# A region names a face when their boxes overlap by this much (intersection over union, in
# the displayed photo's pixels). Distinct faces of one photo overlap by at most 0.11 on the
# albums and labeled photos (docs/xmp.md), and a region drawn 1.4 times the face's box still
# overlaps it by 0.5: the cut lies between the two.
MIN_IOU = 0.5
MAX_SIDECAR = 16 << 20  # bytes: a sidecar is text about one photo; beyond this it is skipped
SIDECAR_NAMINGS = ("photo.jpg.xmp", "photo.xmp")


class MalformedXMP(ValueError):
    """XMP that is not XML, or not RDF as XMP writes it."""


@dataclass(frozen=True)
class Region:
    """A named face region: centre (x, y) and size (w, h), normalised to the photo as displayed.
    `person`: facedist's person id, on the regions facedist wrote."""

    name: str
    x: float
    y: float
    w: float
    h: float
    person: int | None = None

    def box(self, width: int, height: int) -> tuple[float, float, float, float]:
        """x1, y1, x2, y2 in the displayed photo's pixels."""
        return ((self.x - self.w / 2) * width, (self.y - self.h / 2) * height,
                (self.x + self.w / 2) * width, (self.y + self.h / 2) * height)

    def same_place(self, other: "Region", tolerance: float = 0.01) -> bool:
        return self.name == other.name and all(
            abs(a - b) <= tolerance for a, b in zip((self.x, self.y, self.w, self.h),
                                                    (other.x, other.y, other.w, other.h)))


def _q(ns: str, local: str) -> str:
    return f"{{{ns}}}{local}"


for _prefix, _uri in PREFIXES.items():
    ET.register_namespace(_prefix, _uri)


# -- reading ------------------------------------------------------------------------------
def _resource(node: ET.Element) -> ET.Element:
    """The node holding a struct's fields: the element itself (rdf:parseType="Resource", or
    fields as attributes), or its rdf:Description."""
    if node.get(_q(RDF, "parseType")) == "Resource":
        return node
    inner = node.find(_q(RDF, "Description"))
    return node if inner is None else inner


def _field(node: ET.Element, ns: str, local: str) -> ET.Element | str | None:
    """A struct field, written as an attribute (its text) or as an element."""
    if _q(ns, local) in node.attrib:
        return node.attrib[_q(ns, local)]
    return node.find(_q(ns, local))


def _text(node: ET.Element, ns: str, local: str) -> str | None:
    value = _field(node, ns, local)
    if value is None or isinstance(value, str):
        return value
    if value.get(_q(RDF, "resource")) is not None:
        return value.get(_q(RDF, "resource"))
    alt = value.find(f"{_q(RDF, 'Alt')}/{_q(RDF, 'li')}")  # a language alternative: the first
    return (alt.text if alt is not None else value.text) or ""


def _items(node: ET.Element | None) -> list[ET.Element]:
    """The rdf:li of a Bag, Seq or Alt property element."""
    if node is None or isinstance(node, str):
        return []
    return [li for array in node for li in array.findall(_q(RDF, "li"))]


def _parse(data: bytes) -> ET.Element:
    try:
        return ET.fromstring(data.strip(b"\0 \t\r\n"))
    except ET.ParseError as exc:
        raise MalformedXMP(f"not XML ({exc})") from None


def _number(text: str | None) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise MalformedXMP(f"an area of {text!r}, not a number") from None
    if not np.isfinite(value):
        raise MalformedXMP(f"an area of {text!r}, not a number")
    return value


def _marked(item: ET.Element) -> int | None:
    value = _text(item, FACEDIST, "Person")
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


def parse_regions(data: bytes) -> list[Region]:
    """The named face regions of an XMP packet or sidecar: MWG's, then Microsoft's (those of
    them not already given by MWG). Raises MalformedXMP."""
    root = _parse(data)
    mwg, mp = [], []
    for regions in root.iter(_q(MWG, "Regions")):
        for item in _items(_field(_resource(regions), MWG, "RegionList")):
            item = _resource(item)
            kind, name = _text(item, MWG, "Type"), (_text(item, MWG, "Name") or "").strip()
            area = _field(item, MWG, "Area")
            if kind not in (None, "Face") or not name or area is None or isinstance(area, str):
                continue
            area = _resource(area)
            if (_text(area, AREA, "unit") or "normalized") != "normalized":
                continue  # MWG areas are normalised; a pixel one would need the photo's size
            x, y, w, h = (_number(_text(area, AREA, k)) for k in "xywh")
            mwg.append(Region(name, x, y, w, h, _marked(item)))
    for info in root.iter(_q(MP, "RegionInfo")):
        for item in _items(_field(_resource(info), MPRI, "Regions")):
            item = _resource(item)
            name = (_text(item, MPREG, "PersonDisplayName") or "").strip()
            rect = _text(item, MPREG, "Rectangle")
            if not name or not rect:
                continue
            parts = [_number(v) for v in rect.split(",")]
            if len(parts) != 4:
                raise MalformedXMP(f"an MP rectangle of {rect!r}, not x, y, w, h")
            x, y, w, h = parts
            region = Region(name, x + w / 2, y + h / 2, w, h, _marked(item))
            if not any(region.same_place(r) for r in mwg):
                mp.append(region)
    return [r for r in mwg + mp if r.w > 0 and r.h > 0]


def embedded_xmp(photo: str | Path) -> bytes | None:
    """The photo's own XMP packet (JPEG's APP1, PNG's iTXt, TIFF's tag 700, WebP's), as Pillow
    reads it: the photo opened for reading, its pixels never decoded."""
    import stat

    from PIL import Image

    try:
        if not stat.S_ISREG(os.stat(photo).st_mode):  # a FIFO would block the open for good
            return None
        with Image.open(photo) as img:
            data = img.info.get("xmp")
            if data is None and hasattr(img, "tag_v2"):
                data = img.tag_v2.get(700)
    except Exception:  # a photo Pillow cannot open: the run says why, on its own
        return None
    if isinstance(data, str):
        data = data.encode("utf-8")
    return data or None


def sidecars(photo: str | Path) -> list[Path]:
    """The sidecars beside a photo, in either naming: photo.jpg.xmp, photo.xmp."""
    photo = Path(photo)
    found = []
    for candidate in (photo.with_name(photo.name + ".xmp"), photo.with_suffix(".xmp")):
        if candidate != photo and candidate.is_file() and candidate not in found:
            found.append(candidate)
    return found


def stamp(path: Path) -> str | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}"


def read_photo_regions(photo: str | Path) -> list[tuple[str, Region]]:
    """(source, region) for each named face region of a photo: "embedded" (its own XMP) or
    the sidecar's file name. Malformed XMP is skipped, with one line naming the file."""
    from .discover import display_path

    found = []
    sources: list[tuple[str, Path, bytes | None]] = [("embedded", Path(photo), embedded_xmp(photo))]
    for car in sidecars(photo):
        try:
            if car.stat().st_size > MAX_SIDECAR:
                log.warning(f"{display_path(car)}: over {MAX_SIDECAR >> 20} MB, not read as XMP")
                continue
            sources.append((car.name, car, car.read_bytes()))
        except OSError as exc:
            log.warning(f"{display_path(car)}: sidecar not read ({exc.strerror or exc})")
    for source, path, data in sources:
        if not data:
            continue
        try:
            found += [(source, r) for r in parse_regions(data)]
        except MalformedXMP as exc:
            log.warning(f"{display_path(path)}: malformed XMP, its face regions skipped ({exc})")
    return found


# -- matching ------------------------------------------------------------------------------
def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _clip(box, width, height):
    return (min(max(box[0], 0), width), min(max(box[1], 0), height),
            min(max(box[2], 0), width), min(max(box[3], 0), height))


def match_regions(regions: list[Region], boxes: np.ndarray, width: int, height: int,
                  min_iou: float = MIN_IOU) -> list[int | None]:
    """For each region, the index of the face box (x1, y1, x2, y2 in displayed pixels) it
    overlaps most, when by at least `min_iou`; else None. Two regions may land on one face (the
    same region in a sidecar and in the photo, or two names for one face: the caller tells)."""
    faces = [_clip(b, width, height) for b in boxes]
    out: list[int | None] = []
    for r in regions:
        area = _clip(r.box(width, height), width, height)
        overlaps = [iou(area, f) for f in faces]
        best = int(np.argmax(overlaps)) if overlaps else -1
        out.append(best if best >= 0 and overlaps[best] >= min_iou else None)
    return out


# -- writing -------------------------------------------------------------------------------
def sidecar_path(photo: str | Path, naming: str) -> Path:
    """photo.jpg.xmp (digiKam's, exiftool's default) or photo.xmp (Lightroom's)."""
    photo = Path(photo)
    if naming == "photo.xmp":
        return photo.with_suffix(".xmp")
    return photo.with_name(photo.name + ".xmp")


def _collect_prefixes(data: bytes) -> None:
    """The prefixes an existing sidecar uses, kept when it is written again."""
    try:
        for _, (prefix, uri) in ET.iterparse(io.BytesIO(data), events=("start-ns",)):
            if prefix and uri not in PREFIXES.values():
                try:
                    ET.register_namespace(prefix, uri)
                except ValueError:
                    pass  # a prefix of ElementTree's own form (ns0): ElementTree picks one
    except ET.ParseError:
        pass


def _sub(parent: ET.Element, ns: str, local: str, text: str | None = None,
         resource: bool = False) -> ET.Element:
    node = ET.SubElement(parent, _q(ns, local))
    if resource:
        node.set(_q(RDF, "parseType"), "Resource")
    if text is not None:
        node.text = text
    return node


def _struct_list(description: ET.Element, ns: str, outer: str, inner_ns: str, inner: str,
                 roots: list[ET.Element]) -> tuple[ET.Element, ET.Element]:
    """The struct `outer` (mwg-rs:Regions, MP:RegionInfo) and the Bag of its list `inner`,
    found in the document (`roots`: its rdf:Description elements) or added to `description`."""
    for root in roots:
        for node in root.iter(_q(ns, outer)):
            struct = _resource(node)
            listed = _field(struct, inner_ns, inner)
            if isinstance(listed, str):
                continue
            if listed is None:
                listed = _sub(struct, inner_ns, inner)
            bag = next(iter(listed), None)
            if bag is None:
                bag = ET.SubElement(listed, _q(RDF, "Bag"))
            return struct, bag
    struct = _sub(description, ns, outer, resource=True)
    listed = _sub(struct, inner_ns, inner)
    return struct, ET.SubElement(listed, _q(RDF, "Bag"))


def _ours(item: ET.Element, mine: list[Region], mp: bool) -> bool:
    """A region facedist wrote: marked, or (the mark dropped by a program that rewrote the
    list) with the name and place of one it writes now."""
    res = _resource(item)
    if _marked(res) is not None:
        return True
    try:
        if mp:
            name = (_text(res, MPREG, "PersonDisplayName") or "").strip()
            x, y, w, h = (_number(v) for v in (_text(res, MPREG, "Rectangle") or "").split(","))
            region = Region(name, x + w / 2, y + h / 2, w, h)
        else:
            area = _field(res, MWG, "Area")
            if area is None or isinstance(area, str):
                return False
            area = _resource(area)
            region = Region((_text(res, MWG, "Name") or "").strip(),
                            *(_number(_text(area, AREA, k)) for k in "xywh"))
    except (MalformedXMP, ValueError):
        return False
    return any(region.same_place(r) for r in mine)


def _f(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") if value else "0"


def merged_sidecar(existing: bytes | None, regions: list[Region], width: int,
                   height: int) -> bytes:
    """A sidecar holding `regions` (MWG and MP), for a photo displayed `width` x `height`:
    `existing` with facedist's former regions replaced and everything else kept, or a new one.
    Raises MalformedXMP for an existing sidecar that is not XMP (it is left as it is)."""
    if existing and existing.strip(b"\0 \t\r\n"):
        _collect_prefixes(existing)
        root = _parse(existing)
        rdf = root if root.tag == _q(RDF, "RDF") else root.find(f".//{_q(RDF, 'RDF')}")
        if rdf is None:
            raise MalformedXMP("no rdf:RDF")
        if root.tag != _q(X, "xmpmeta"):  # a bare rdf:RDF (or other wrapper): wrapped as XMP is
            wrapper = ET.Element(_q(X, "xmpmeta"))
            wrapper.append(rdf)
            root = wrapper
    else:
        root = ET.Element(_q(X, "xmpmeta"))
        rdf = ET.SubElement(root, _q(RDF, "RDF"))
    descriptions = rdf.findall(_q(RDF, "Description"))
    if not descriptions:
        descriptions = [ET.SubElement(rdf, _q(RDF, "Description"), {_q(RDF, "about"): ""})]
    first = descriptions[0]

    struct, bag = _struct_list(first, MWG, "Regions", MWG, "RegionList", descriptions)
    for item in list(bag):
        if _ours(item, regions, mp=False):
            bag.remove(item)
    if _field(struct, MWG, "AppliedToDimensions") is None:
        dims = ET.Element(_q(MWG, "AppliedToDimensions"), {_q(RDF, "parseType"): "Resource"})
        _sub(dims, DIM, "w", str(width))
        _sub(dims, DIM, "h", str(height))
        _sub(dims, DIM, "unit", "pixel")
        struct.insert(0, dims)
    for r in regions:
        li = ET.SubElement(bag, _q(RDF, "li"), {_q(RDF, "parseType"): "Resource"})
        area = _sub(li, MWG, "Area", resource=True)
        for k in "xywh":
            _sub(area, AREA, k, _f(getattr(r, k)))
        _sub(area, AREA, "unit", "normalized")
        _sub(li, MWG, "Type", "Face")
        _sub(li, MWG, "Name", r.name)
        if r.person is not None:
            _sub(li, FACEDIST, "Person", str(r.person))

    _, bag = _struct_list(first, MP, "RegionInfo", MPRI, "Regions", descriptions)
    for item in list(bag):
        if _ours(item, regions, mp=True):
            bag.remove(item)
    for r in regions:
        li = ET.SubElement(bag, _q(RDF, "li"), {_q(RDF, "parseType"): "Resource"})
        _sub(li, MPREG, "Rectangle", ", ".join(_f(v) for v in (r.x - r.w / 2, r.y - r.h / 2,
                                                              r.w, r.h)))
        _sub(li, MPREG, "PersonDisplayName", r.name)
        if r.person is not None:
            _sub(li, FACEDIST, "Person", str(r.person))
    ET.indent(root, space=" ")
    body = ET.tostring(root, encoding="unicode")
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n' + body
            + '\n<?xpacket end="w"?>\n').encode("utf-8")


def face_region(box, width: int, height: int, name: str, person: int) -> Region:
    """The region of a face box (x1, y1, x2, y2 in displayed pixels), clipped to the photo."""
    x1, y1, x2, y2 = _clip(box, width, height)
    return Region(name, (x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width,
                  (y2 - y1) / height, person)


UNNAMED = re.compile(r"person \d+")


def unnamed_label(person: int) -> str:
    """How `--xmp all` names a person who has no name."""
    return f"person {person}"


# -- a run reads them ------------------------------------------------------------------------
def photo_stamps(photo: str, size: int, mtime_ns: int) -> str:
    """What a photo's XMP sources are now: the photo's size and mtime, and each sidecar's."""
    parts = [f"photo={size}:{mtime_ns}"]
    parts += [f"{car.name}={stamp(car)}" for car in sidecars(photo)]
    return ";".join(parts)


@dataclass
class TagSummary:
    photos: int = 0  # photos whose XMP was read in this run
    named: int = 0  # faces named (or placed) from a region
    agrees: int = 0  # regions that say what facedist says already
    unmatched: int = 0  # regions on no detected face
    conflicts: int = 0  # regions not applied: they disagree (people OUT tags)


def read_tags(store, key: str, table, paths, min_iou: float = MIN_IOU) -> TagSummary:
    """Read the face regions of the photos of `paths` whose XMP (their own, or a sidecar's)
    changed since it was last read, and apply them, in one transaction of the run's writer
    `store`, after its people are assigned: a region on a face names the face's person
    (people.Name) and pins the face there (people.Move); a face of no person (unclear) joins
    the one person of that name, or a new one. Never applied, and stored with a note for
    `facedist people OUT tags`: two names on one face, a name on a face whose person facedist
    names otherwise, two names on the faces of one person, a name on an ignored face. A name
    on people facedist keeps apart names them both and says so (outcome "apart"): they are
    not merged."""
    from .people import MAX_NAME, Move, Name, check_name, person_ids

    known = store.known_images(key)
    before = store.tag_stamps(key)
    fresh = []  # (path, image id, stamps, [(source, region)])
    for path in paths:
        record = known.get(path)
        if record is None or record[4] != "done":  # a file skipped (a FIFO, not a photo): unread
            continue
        image_id, size, mtime_ns = record[:3]
        stamps = photo_stamps(path, size, mtime_ns)
        if before.get(image_id) != stamps:
            regions = [(s, r) for s, r in read_photo_regions(path)
                       if not (r.person is not None and UNNAMED.fullmatch(r.name))]
            fresh.append((path, image_id, stamps, regions))
    summary = TagSummary(photos=len(fresh))
    if not fresh:
        return summary
    sizes = store.image_sizes()
    rows_of: dict[str, list[int]] = {}
    for i, p in enumerate(table.paths):
        rows_of.setdefault(p, []).append(i)
    person, _ = person_ids(store, table.face_ids)
    person_of = dict(zip(table.face_ids.tolist(), person.tolist()))
    ignored = store.ignored(key)
    names = store.person_names(key)

    # each region: [source, region, face id or None, outcome, note]
    found: dict[int, list[list]] = {}
    for path, image_id, _, regions in fresh:
        rows = rows_of.get(path, [])
        size = sizes.get(path)
        matched = (match_regions([r for _, r in regions], table.boxes[rows], *size, min_iou)
                   if size and rows else [None] * len(regions))
        found[image_id] = [[s, r, None if m is None else int(table.face_ids[rows[m]]),
                            "unmatched" if m is None else "", None]
                           for (s, r), m in zip(regions, matched)]
        for e in found[image_id]:
            try:
                check_name(e[1].name)
            except ValueError as exc:  # kept short: a region's name is anyone's text
                e[1] = Region(e[1].name[:MAX_NAME] + "…", e[1].x, e[1].y, e[1].w, e[1].h)
                e[2:] = [None, "refused", str(exc)]
    entries = [e for es in found.values() for e in es if e[2] is not None]

    def settle(which, outcome, note=None):
        for e in which:
            e[3], e[4] = outcome, note

    by_face: dict[int, list[list]] = {}
    for e in entries:
        by_face.setdefault(e[2], []).append(e)
    by_person: dict[int, list[list]] = {}
    unclear: dict[str, list[list]] = {}
    for face, es in by_face.items():
        said = sorted({e[1].name for e in es})
        p = person_of.get(face, -1)
        if len(said) > 1:
            settle(es, "conflict", "names " + " and ".join(f'"{n}"' for n in said)
                   + " on one face: correct it in facedist or in the photo's XMP")
        elif face in ignored:
            settle(es, "ignored", f"face set aside in facedist (unignore face {face} to use it)")
        elif p >= 0 and names.get(p) == said[0]:
            settle(es, "agrees")
        elif p >= 0 and p in names:
            settle(es, "conflict", f'facedist names this face\'s person {p} "{names[p]}"')
        elif p >= 0:
            by_person.setdefault(p, []).extend(es)
        else:
            unclear.setdefault(said[0], []).extend(es)
    corrections = []  # people.Move and people.Name, applied in order
    named: dict[str, set[int]] = {}
    for n, p in ((n, p) for p, n in names.items()):
        named.setdefault(n, set()).add(p)
    for p, es in by_person.items():
        said = sorted({e[1].name for e in es})
        if len(said) > 1:
            settle(es, "conflict", f"person {p} holds faces named " + " and ".join(
                f'"{n}"' for n in said) + ": people OUT move FACE_ID new parts them")
            continue
        for face in sorted({e[2] for e in es}):
            corrections.append(Move(face, p))
        corrections.append(Name(p, said[0]))
        named.setdefault(said[0], set()).add(p)
        settle(es, "named")
    summary_named = 0
    with store.transaction():
        for correction in corrections:
            correction.apply(store, key)
            summary_named += isinstance(correction, Move)
        for name, es in unclear.items():
            holders = named.get(name, set())
            if len(holders) > 1:
                settle(es, "conflict", f'"{name}" is several people here ('
                       + ", ".join(map(str, sorted(holders))) + "): people OUT move FACE_ID ID")
                continue
            target = next(iter(holders)) if holders else None
            for face in sorted({e[2] for e in es}):
                target = Move(face, target).apply(store, key)
                summary_named += 1
            Name(target, name).apply(store, key)
            named.setdefault(name, set()).add(target)
            settle(es, "named")
        for name, holders in named.items():  # one name, people facedist keeps apart
            if len(holders) > 1:
                ids = sorted(holders)
                note = (f'"{name}" names people {", ".join(map(str, ids))}, which facedist keeps '
                        f"apart: people OUT merge {ids[0]} {ids[1]}, or apart {ids[0]} {ids[1]}")
                settle([e for e in entries if e[1].name == name and e[3] == "named"], "apart", note)
        for path, image_id, stamps, _ in fresh:
            store.set_tag_regions(key, image_id, stamps, [
                (s, r.name, r.x, r.y, r.w, r.h, face, outcome, note)
                for s, r, face, outcome, note in found[image_id]])
    every = [e for es in found.values() for e in es]
    summary.named = summary_named
    summary.agrees = sum(e[3] == "agrees" for e in every)
    summary.unmatched = sum(e[3] == "unmatched" for e in every)
    summary.conflicts = sum(e[3] in ("conflict", "apart") for e in every)
    return summary


# -- export --xmp ----------------------------------------------------------------------------
def export_sidecars(db, which: str = "named", naming: str = "photo.jpg.xmp",
                    dest: str | Path | None = None, in_place: bool = False) -> list[Path]:
    """A sidecar per photo holding a face of a named person (which="all": of any person, the
    unnamed as "person 12"), at the photo's current path (facedist follows moves): beside it
    (`in_place`), else under `dest` mirroring the photo tree (default OUT/xmp). An existing
    sidecar is merged (merged_sidecar), written whole or not at all; a photo is never written.
    Returns the sidecars written."""
    from .atomic import replacing
    from .discover import display_path

    if which not in ("named", "all"):
        raise ValueError(f"--xmp takes named or all, not {which!r}")
    if naming not in SIDECAR_NAMINGS:
        raise ValueError(f"--sidecar-name takes {' or '.join(SIDECAR_NAMINGS)}, not {naming!r}")
    if in_place and dest is not None:
        raise ValueError("--xmp writes beside the photos (--in-place) or under --dest DIR, not both")
    t = db.faces()
    person = db.person_of(t)
    ignored = db.ignored(t)
    names = db.store.person_names(db.pipeline_key)
    sizes = db.store.image_sizes()
    root = Path(db.store.run_record(db.run_id)["photos"])
    dest = None if in_place else Path(dest) if dest is not None else db.out / "xmp"
    regions: dict[str, list[Region]] = {}
    for i, path in enumerate(t.paths):
        p = int(person[i])
        if p < 0 or ignored[i] or path not in sizes or (which == "named" and p not in names):
            continue
        name = names.get(p) or unnamed_label(p)
        regions.setdefault(path, []).append(face_region(t.boxes[i], *sizes[path], name, p))
    written, taken = [], {}
    for photo, found in sorted(regions.items()):
        beside = sidecar_path(photo, naming)
        if dest is None:
            target = beside
        else:
            absolute = Path(os.path.abspath(photo))
            try:
                relative = absolute.relative_to(root)
            except ValueError:
                relative = absolute.relative_to(absolute.anchor)
            target = dest / sidecar_path(relative, naming)
        if target in taken:  # photo.xmp of a.jpg and a.png: Lightroom's naming holds one
            log.warning(f"{display_path(photo)}: its sidecar {display_path(target)} is "
                        f"{display_path(taken[target])}'s already: skipped (--sidecar-name "
                        f"photo.jpg.xmp keeps them apart)")
            continue
        taken[target] = photo
        existing = target.read_bytes() if target.is_file() else None
        try:
            data = merged_sidecar(existing, found, *sizes[photo])
        except MalformedXMP as exc:
            log.warning(f"{display_path(target)}: malformed XMP ({exc}), left as it is")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with replacing(target, "wb") as fh:
            fh.write(data)
        written.append(target)
    return written
