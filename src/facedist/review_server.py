"""review_server: `facedist review OUT`, a local page to answer the review queue (review.py).

Standard library only (http.server's ThreadingHTTPServer), bound to 127.0.0.1 on a free port,
with a random token in every address (http://127.0.0.1:PORT/TOKEN/). A request without the
token, from anywhere but the loopback, for another Host, or with an Origin other than the
page's own gets 403 and changes nothing. Each answer is written at once through FaceDB.answer
(holding the output folder for that answer only: a run waits for it, and while a run holds the
folder the page says Busy), so reloading the page or killing the server loses nothing.

The page uses the report's stylesheet (report/static) and thumbnails cut as the report cuts
them (report/thumbs.py, into OUT/report/thumbs where the report keeps them); nothing is fetched
from outside.
"""
from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

log = logging.getLogger("facedist")

SHOW = 6  # faces shown per side
STATIC = {"report.css": "text/css", "favicon.svg": "image/svg+xml",
          "review.js": "text/javascript", "missing.svg": "image/svg+xml"}


class ReviewApp:
    """The review page's data: questions with the faces to show, answers, undo, thumbnails."""

    def __init__(self, out: str | Path) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.out = Path(out)
        # SQLite connections stay on the thread that made them: the database is used on one
        # thread of its own, one request at a time
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="facedist-review-db")
        self.pool.submit(self._open).result()

    def _on_db(self, fn, *args):
        return self.pool.submit(fn, *args).result()

    def _open(self) -> None:
        from .facedb import FaceDB

        self.db = FaceDB(self.out)
        self._rows = (None, {})  # (the faces table it indexes, face id -> row)
        self._records = (None, {})  # (the run it is of, path -> (SHA-256, size, mtime))
        report = self.out / "report"
        self.thumbs = report if os.access(self.out, os.W_OK) else Path(tempfile.mkdtemp())

    # What the page shows comes from the folder as it is now: FaceDB follows a newer run and
    # any change of the people, and these follow FaceDB.
    @property
    def table(self):
        return self.db.faces()

    @property
    def row(self) -> dict[int, int]:
        table = self.table
        if self._rows[0] is not table:
            self._rows = (table, {int(f): i for i, f in enumerate(table.face_ids)})
        return self._rows[1]

    @property
    def records(self) -> dict:
        if self._records[0] != self.db.run_id:
            self._records = (self.db.run_id, self.db.store.image_records())
        return self._records[1]

    # -- questions ------------------------------------------------------------------------
    def _side(self, queue, person: int, toward: np.ndarray | None) -> dict:
        faces = queue.person_faces(person)
        rows = np.array([self.row[int(f)] for f in faces], np.int64)
        if toward is not None and len(rows):
            rows = rows[np.argsort(-(self.table.embeddings[rows] @ toward))]
        return {"person": int(person), "name": queue.names.get(int(person)),
                "faces": int(len(faces)), "show": [int(self.table.face_ids[r]) for r in rows[:SHOW]]}

    def _mean(self, queue, person: int) -> np.ndarray | None:
        i = queue.index.get(int(person))
        return None if i is None else queue.sums[i] / max(queue.size[i], 1)

    def describe(self, q) -> dict:
        from .discover import display_path

        queue = self.db.review_queue()
        out = q.as_dict()
        if q.kind == "same":
            out["left"] = self._side(queue, q.a, self._mean(queue, q.b))
            out["right"] = self._side(queue, q.b, self._mean(queue, q.a))
        elif q.kind == "who":
            out["left"] = self._side(queue, q.a, None)
            out["options"] = [self._side(queue, p, self._mean(queue, q.a)) | {"distance": round(d, 4)}
                              for p, _, d in q.suggestions]
        else:
            r = self.row[q.face]
            now = queue.person_of_face(q.face)
            out["left"] = {"face": q.face, "path": display_path(self.table.paths[r]),
                           "person": now, "name": queue.names.get(now), "inside": now == q.a,
                           "show": [q.face]}
            out["right"] = self._side(queue, q.a, self.table.embeddings[r].astype(np.float64))
            out["right"]["show"] = [f for f in out["right"]["show"] if f != q.face][:SHOW]
        return out

    def state(self, n: int = 1) -> dict:
        return self._on_db(self._state, n)

    def _state(self, n: int) -> dict:
        questions = [self.describe(q) for q in self.db.review_questions(n)]
        return {"questions": questions, "progress": self.db.review_progress(),
                "busy": self.busy()}

    def busy(self) -> str | None:
        """What holds the output folder now (a run), or None; asked without taking the lock,
        so that a run starting at that instant is never refused for the page's sake."""
        from .store import OutputLock

        holder = OutputLock.holder(self.out)
        return None if holder is None else (f"{self.out}: {holder} is writing this output "
                                            f"folder; answers wait for it to end")

    def answer(self, question: str, answer) -> dict:
        return self._on_db(self.db.answer, question, answer)

    def undo(self) -> dict | None:
        return self._on_db(self.db.undo)

    # -- thumbnails -----------------------------------------------------------------------
    def thumbnail(self, face_id: int) -> Path | None:
        from .report.thumbs import ThumbJob, cut_photo

        found = self._on_db(self._thumb_of, face_id)
        if found is None:
            return None
        path, box, name, max_pixels = found
        dest = self.thumbs / name
        if not dest.is_file():  # cut here, on the request's thread: the database waits for none
            if cut_photo(ThumbJob(path, [box], [name]), self.thumbs, max_pixels) is not None:
                return None
        return dest

    def _thumb_of(self, face_id: int):
        """(photo path, box, thumbnail name, max pixels) of a face of the current run."""
        from .report.thumbs import thumb_name

        r = self.row.get(face_id)
        if r is None:
            return None
        path = self.table.paths[r]
        box = tuple(map(float, self.table.boxes[r]))
        return path, box, thumb_name(self.records.get(path, (None,))[0] or path, box), \
            self.db.settings.max_pixels

    def close(self) -> None:
        self._on_db(self.db.close)
        self.pool.shutdown()


def page(token: str) -> str:
    from .report.html import _environment

    return _environment().get_template("review.html").render(token=token)


def make_handler(app: ReviewApp, token: str, port_of):
    prefix = f"/{token}/"

    class Handler(BaseHTTPRequestHandler):
        server_version = "facedist-review"

        def log_message(self, fmt, *args) -> None:  # quiet: -v shows requests
            log.debug("review: " + fmt % args)

        def _allowed(self) -> str | None:
            """The path after the token, or None (403 sent) for a request that may not."""
            host = self.client_address[0]
            port = port_of()
            if host not in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
                return self._refuse("not from this computer")
            if self.headers.get("Host") not in (f"127.0.0.1:{port}", f"localhost:{port}"):
                return self._refuse("wrong host")
            origin = self.headers.get("Origin")
            if origin is not None and origin not in (f"http://127.0.0.1:{port}",
                                                     f"http://localhost:{port}"):
                return self._refuse("foreign origin")
            path = urlsplit(self.path).path
            if not (path.startswith(prefix) and hmac.compare_digest(path[:len(prefix)], prefix)):
                return self._refuse("no token")
            return path[len(prefix):]

        def _refuse(self, why: str) -> None:
            self._send(403, json.dumps({"error": f"forbidden: {why}"}).encode(), "application/json")
            return None

        def _send(self, code: int, body: bytes, kind: str, cache: bool = False) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "private, max-age=3600" if cache else "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self'; "
                             "connect-src 'self'; frame-ancestors 'none'")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, value) -> None:
            self._send(code, json.dumps(value, ensure_ascii=False).encode(), "application/json")

        def do_GET(self) -> None:  # noqa: N802
            rest = self._allowed()
            if rest is None:
                return
            try:
                if rest in ("", "index.html"):
                    return self._send(200, page(token).encode(), "text/html; charset=utf-8")
                if rest == "api/questions":
                    query = dict(p.split("=", 1) for p in urlsplit(self.path).query.split("&")
                                 if "=" in p)
                    n = max(1, min(int(query.get("n", "1")), 50))
                    return self._json(200, app.state(n))
                if rest.startswith("static/") and rest[7:] in STATIC:
                    body = resources.files("facedist.report").joinpath("static", rest[7:]).read_bytes()
                    return self._send(200, body, STATIC[rest[7:]], cache=True)
                if rest.startswith("face/") and rest.endswith(".jpg"):
                    thumb = app.thumbnail(int(rest[5:-4]))
                    if thumb is None:
                        body = resources.files("facedist.report").joinpath(
                            "static", "missing.svg").read_bytes()
                        return self._send(200, body, "image/svg+xml")
                    return self._send(200, thumb.read_bytes(), "image/jpeg", cache=True)
                return self._json(404, {"error": "not found"})
            except Exception as exc:  # noqa: BLE001 - the page shows it; the server goes on
                return self._json(500, {"error": str(exc).splitlines()[0] if str(exc) else
                                        type(exc).__name__})

        def do_POST(self) -> None:  # noqa: N802
            from .errors import Busy

            rest = self._allowed()
            if rest is None:
                return
            if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
                return self._refuse("JSON only")
            try:
                size = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(min(size, 1 << 16)) or b"{}")
                if rest == "api/answer":
                    done = app.answer(str(body.get("question", "")), body.get("answer"))
                    return self._json(200, {"done": done, **app.state(1)})
                if rest == "api/undo":
                    undone = app.undo()
                    return self._json(200, {"undone": undone, **app.state(1)})
                return self._json(404, {"error": "not found"})
            except Busy as exc:
                return self._json(409, {"busy": str(exc)})
            except (ValueError, TypeError) as exc:
                return self._json(400, {"error": str(exc)})
            except Exception as exc:  # noqa: BLE001
                return self._json(500, {"error": str(exc).splitlines()[0] if str(exc) else
                                        type(exc).__name__})

        def do_PUT(self) -> None:  # noqa: N802
            self._refuse("method")

        do_DELETE = do_PATCH = do_PUT

    return Handler


class ReviewServer:
    """The server, started on a thread by `start` (tests) or in the foreground by `serve`."""

    def __init__(self, out: str | Path, port: int = 0) -> None:
        self.app = ReviewApp(out)
        self.token = secrets.token_urlsafe(18)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), make_handler(
            self.app, self.token, lambda: self.httpd.server_address[1]))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{self.token}/"

    def start(self) -> "ReviewServer":
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.app.close()


def serve(out: str | Path, open_browser: bool = False, port: int = 0) -> int:
    """`facedist review OUT`: serve until Ctrl-C; every answer is already written."""
    server = ReviewServer(out, port)
    print(f"review the people of {out} at {server.url}", flush=True)
    print("(answers are written as you give them; Ctrl-C ends)", file=sys.stderr, flush=True)
    if open_browser:
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
        server.app.close()
    return 0
