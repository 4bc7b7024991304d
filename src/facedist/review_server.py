"""review_server: `facedist review OUT`, a local page to answer the review queue (review.py).

Standard library only (http.server's ThreadingHTTPServer), bound to 127.0.0.1 on a free port,
with a random token in every address (http://127.0.0.1:PORT/TOKEN/). A request without the
token, from anywhere but the loopback, for another Host, or with an Origin other than the
page's own gets 403 and changes nothing. Every request is bounded in size and time (MAX_BODY,
SOCKET_TIMEOUT, REQUEST_SECONDS, MAX_CONNECTIONS below); a malformed one gets 400/404/411/413
with a short message of ours, and a client that hangs up is not reported. Each answer is
written at once through FaceDB.answer (holding the output folder for that answer only: a run
waits for it, and while a run holds the folder the page says Busy), so reloading the page or
killing the server loses nothing.

The page uses the report's stylesheet (report/static) and thumbnails cut as the report cuts
them (report/thumbs.py, into OUT/report/thumbs where the report keeps them); nothing is fetched
from outside.

The report follows the answers: where OUT/report holds one, it is rewritten once the answers
pause for REPORT_PAUSE seconds, and when the server stops (the command line's corrections
rewrite it at once: FaceDB.report_follows). Rewriting it after every answer would make each
answer wait a second or two; serving its pages live would be a second report writer.
"""
from __future__ import annotations

import errno
import hmac
import io
import json
import logging
import os
import re
import secrets
import socket
import socketserver
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit


from .errors import Busy, FacedistError, SettingError

log = logging.getLogger("facedist")

SHOW = 6  # faces shown per side
REPORT_PAUSE = 2.0  # seconds without answers before OUT/report is rewritten
STATIC = {"report.css": "text/css", "favicon.svg": "image/svg+xml",
          "review.js": "text/javascript", "missing.svg": "image/svg+xml"}


def _name(queue, person: int) -> str | None:
    """A person's name as the page shows it: escaped like everywhere (display.shown), so that
    a control or bidi character in a name cannot reorder or hide the page's text."""
    from .display import shown

    name = queue.names.get(int(person))
    return None if name is None else shown(name)


class ReviewApp:
    """The review page's data: questions with the faces to show, answers, undo, thumbnails."""

    def __init__(self, out: str | Path) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.out = Path(out)
        # SQLite connections stay on the thread that made them: the database is used on one
        # thread of its own, one request at a time
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="facedist-review-db")
        self.pool.submit(self._open).result()
        self._report_timer = None  # the pending rewrite of OUT/report (threading.Timer)
        self._report_lock = threading.Lock()

    def _on_db(self, fn, *args):
        return self.pool.submit(fn, *args).result()

    def _open(self) -> None:
        from .facedb import FaceDB

        self.db = FaceDB(self.out)
        self.db.report_follows = False  # rewritten once the answers pause (_report_later)
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
    @staticmethod
    def _side(queue, person: int, show: list[int]) -> dict:
        return {"person": int(person), "name": _name(queue, person),
                "faces": queue.size_of(person), "show": show}

    def describe(self, q) -> dict:
        """A question as the page shows it: the faces per side are the queue's (the command
        line's review --json lists the same)."""
        from .discover import display_path

        queue = self.db.review_queue()
        out = q.as_dict()
        shown = queue.shown(q, SHOW)
        if q.kind == "same":
            out["left"] = self._side(queue, q.a, shown["left"])
            out["right"] = self._side(queue, q.b, shown["right"])
        elif q.kind == "who":
            out["left"] = self._side(queue, q.a, shown["left"])
            out["options"] = [self._side(queue, p, shown["suggestions"][p]) | {"distance": round(d, 4)}
                              for p, _, d in q.suggestions]
        elif q.kind == "split":
            out["left"] = self._side(queue, q.a, shown["left"])
        elif q.kind == "strangers":
            out["left"] = {"person": -1, "name": None, "faces": len(q.faces),
                           "show": shown["left"]}
        else:
            r = self.row[q.face]
            now = queue.person_of_face(q.face)
            out["left"] = {"face": q.face, "path": display_path(self.table.paths[r]),
                           "person": now, "name": _name(queue, now), "inside": now == q.a,
                           "show": shown["left"]}
            out["right"] = self._side(queue, q.a, shown["right"])
        return out

    def state(self, n: int = 1, past_done: bool = False) -> dict:
        return self._on_db(self._state, n, past_done)

    def _state(self, n: int, past_done: bool) -> dict:
        from .display import shown

        questions = [self.describe(q) for q in self.db.review_questions(n, past_done)]
        progress = self.db.review_progress()
        queue = self.db.review_queue()
        names = sorted({shown(n) for p, n in queue.names.items() if queue.size_of(p)})
        if progress["done"]:
            people = [p for p in queue.pid if queue.size_of(p) >= 2]
            progress["summary"] = {"people": len(people),
                                   "named": sum(p in queue.names for p in people),
                                   "faces": int(sum(queue.size_of(p) for p in people))}
        return {"questions": questions, "progress": progress, "names": names,
                "busy": self.busy()}

    def busy(self) -> str | None:
        """What holds the output folder now (a run), or None; asked without taking the lock,
        so that a run starting at that instant is never refused for the page's sake."""
        from .store import OutputLock

        holder = OutputLock.holder(self.out)
        return None if holder is None else (f"{self.out}: {holder} is writing this output "
                                            f"folder; answers wait for it to end")

    def answer(self, question: str, answer) -> dict:
        done = self._on_db(self.db.answer, question, answer)
        self._report_later()
        return done

    def undo(self) -> dict | None:
        undone = self._on_db(self.db.undo)
        self._report_later()
        return undone

    # -- the report follows ---------------------------------------------------------------
    def _report_later(self) -> None:
        """Rewrite OUT/report (if there is one) once no answer has come for REPORT_PAUSE s."""
        if not self.db.has_report():
            return
        with self._report_lock:
            if self._report_timer is not None:
                self._report_timer.cancel()
            self._report_timer = threading.Timer(REPORT_PAUSE, self.rewrite_report)
            self._report_timer.daemon = True
            self._report_timer.start()

    def rewrite_report(self) -> bool:
        """Rewrite OUT/report now if a rewrite is pending; True when one was written."""
        with self._report_lock:
            if self._report_timer is None:
                return False
            self._report_timer.cancel()
            self._report_timer = None
        try:
            self._on_db(self.db.report)
        except Busy as exc:  # a run holds the folder: it writes the report itself
            log.info(f"report not rewritten: {exc}")
            return False
        except FacedistError as exc:
            log.warning(f"facedist: the report was not rewritten: {str(exc).splitlines()[0]}")
            return False
        return True

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
        self.rewrite_report()  # the answers since the last rewrite
        self._on_db(self.db.close)
        self.pool.shutdown()


def page(token: str) -> str:
    from .report.html import _environment

    return _environment().get_template("review.html").render(token=token)


# Every request is bounded: its body (an answer is a few hundred bytes), each read or write on
# its connection, the whole request's arrival (a client trickling a byte at a time within the
# read timeout would hold a thread for ever), and the connections served at once. Request lines
# and headers keep http.server's bounds: 64 KiB a line (414, 431), 100 headers (431).
MAX_BODY = 64 * 1024  # bytes of a POST body
SOCKET_TIMEOUT = 10.0  # seconds one read or write on a connection may wait
REQUEST_SECONDS = 30.0  # seconds the request line, headers and body may take to arrive
MAX_CONNECTIONS = 32  # connections served at once; more are turned away with 503
MAX_TEXT = 1000  # characters of a question id, an answer or a name in an answer
INTERNAL = "internal error (run `facedist review -v` to see it in the log)"
# A client gone (hung up, reset) or too slow: nothing to tell anyone, nothing to answer
GONE = (ConnectionError, TimeoutError)


class _DeadlineReader(io.RawIOBase):
    """The connection's reading side, which gives up (TimeoutError) once `deadline` (a
    time.monotonic) has passed, however the bytes trickle in."""

    def __init__(self, sock: socket.socket, deadline: float, timeout: float) -> None:
        self.sock, self.deadline, self.timeout = sock, deadline, timeout

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request took too long to arrive")
        self.sock.settimeout(min(self.timeout, left))
        try:
            return self.sock.recv_into(buffer)
        finally:
            self.sock.settimeout(self.timeout)  # writes keep the whole timeout


def check_port(port) -> int:
    """`port` as an int in 0..65535 (0: any free port); SettingError else."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise SettingError(f"--port is a whole number from 0 to 65535 (0: any free port), "
                           f"not {port!r}")
    return port


def make_handler(app: ReviewApp, token: str, port_of):
    token_bytes = token.encode()

    class Handler(BaseHTTPRequestHandler):
        server_version = "facedist-review"
        timeout = SOCKET_TIMEOUT  # StreamRequestHandler sets it on the connection
        request_seconds = REQUEST_SECONDS

        def setup(self) -> None:
            super().setup()
            self.rfile.close()
            self.rfile = io.BufferedReader(_DeadlineReader(
                self.connection, time.monotonic() + self.request_seconds, self.timeout))

        def handle(self) -> None:
            try:
                super().handle()
            except GONE as exc:
                self.close_connection = True
                log.debug("review: a client left: %s", type(exc).__name__)

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
            try:
                path = urlsplit(self.path).path
            except ValueError:  # "//[": not a path this server has
                path = ""
            first, slash, rest = path[1:].partition("/") if path.startswith("/") else ("", "", "")
            # the first segment, whatever it holds, is compared in constant time: no short-cut
            # that answers sooner for a wrong first character
            same = hmac.compare_digest(first.encode("utf-8", "replace"), token_bytes)
            if not (same and slash):
                return self._refuse("no token")
            return rest

        def _refuse(self, why: str) -> None:
            self._send(403, json.dumps({"error": f"forbidden: {why}"}).encode(), "application/json")
            return None

        def _send(self, code: int, body: bytes, kind: str, cache: bool = False) -> None:
            # one request a connection (HTTP/1.0): said, so that a refused body is not awaited
            self.close_connection = True
            try:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.send_header("Cache-Control", "private, max-age=3600" if cache else "no-store")
                self.send_header("X-Content-Type-Options", "nosniff")
                self.send_header("Referrer-Policy", "no-referrer")
                self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self'; "
                                 "connect-src 'self'; frame-ancestors 'none'")
                self.end_headers()
                self.wfile.write(body)
            except GONE as exc:
                log.debug("review: a client left before its answer: %s", type(exc).__name__)

        def _json(self, code: int, value) -> None:
            self._send(code, json.dumps(value, ensure_ascii=False).encode(), "application/json")

        def _error(self, code: int, message: str) -> None:
            self._json(code, {"error": message})

        def _internal(self) -> None:
            log.debug("review: internal error on %s %s", self.command, self.path[:200],
                      exc_info=True)
            self._error(500, INTERNAL)

        def do_GET(self) -> None:  # noqa: N802
            rest = self._allowed()
            if rest is None:
                return
            try:
                self._get(rest)
            except Exception:  # noqa: BLE001 - a bug: the page says so; the server goes on
                self._internal()

        def _get(self, rest: str) -> None:
            if rest in ("", "index.html"):
                return self._send(200, page(token).encode(), "text/html; charset=utf-8")
            if rest == "api/questions":
                n = self._count()
                if n is None:
                    return self._error(400, "n is a number of questions, 1 to 50")
                return self._json(200, app.state(n, self._flag("all")))
            if rest.startswith("static/") and rest[7:] in STATIC:
                body = resources.files("facedist.report").joinpath("static", rest[7:]).read_bytes()
                return self._send(200, body, STATIC[rest[7:]], cache=True)
            face = re.fullmatch(r"face/([0-9]{1,18})\.jpg", rest)
            if face:
                thumb = app.thumbnail(int(face[1]))
                if thumb is None:
                    body = resources.files("facedist.report").joinpath(
                        "static", "missing.svg").read_bytes()
                    return self._send(200, body, "image/svg+xml")
                return self._send(200, thumb.read_bytes(), "image/jpeg", cache=True)
            return self._error(404, "not found")

        def _query(self, name: str) -> list[str] | None:
            """The query's values of `name`; None when the query is malformed (over 10
            fields)."""
            try:
                query = parse_qsl(urlsplit(self.path).query, keep_blank_values=True,
                                  max_num_fields=10)
            except ValueError:
                return None
            return [v for k, v in query if k == name]

        def _count(self) -> int | None:
            """The query's n (1 when absent), clamped to 1..50; None when it is not a number."""
            given = self._query("n")
            if given is None:
                return None
            if not given:
                return 1
            if not re.fullmatch(r"[0-9]{1,6}", given[-1]):
                return None
            return max(1, min(int(given[-1]), 50))

        def _flag(self, name: str) -> bool:
            """Whether the query sets `name` to 1."""
            return "1" in (self._query(name) or [])

        def _body(self) -> dict | None:
            """The request's body, a JSON object of at most MAX_BODY bytes; None when an error
            was sent (the body is then left unread, and the connection closed)."""
            if self.headers.get("Transfer-Encoding") is not None:
                return self._error(411, "a body is sent with a Content-Length")
            lengths = self.headers.get_all("Content-Length") or []
            if not lengths:
                return self._error(411, "a body is sent with a Content-Length")
            if len(set(lengths)) > 1 or not re.fullmatch(r"[0-9]+", lengths[0]):
                return self._error(400, "Content-Length is not a number of bytes")
            if len(lengths[0]) > 9 or int(lengths[0]) > MAX_BODY:
                return self._error(413, f"a body is at most {MAX_BODY} bytes")
            size = int(lengths[0])
            data = self.rfile.read(size)
            if len(data) < size:  # the client hung up
                raise ConnectionAbortedError("the body ended early")
            try:
                body = json.loads(data.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                return self._error(400, "the body is not JSON (UTF-8)")
            if not isinstance(body, dict):
                return self._error(400, "the body is not a JSON object")
            return body

        def do_POST(self) -> None:  # noqa: N802
            rest = self._allowed()
            if rest is None:
                return
            if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
                return self._refuse("JSON only")
            if rest not in ("api/answer", "api/undo"):
                return self._error(404, "not found")
            body = self._body()
            if body is None:
                return
            try:
                if rest == "api/answer":
                    question, answer = body.get("question"), body.get("answer")
                    if not (isinstance(question, str) and 0 < len(question) <= MAX_TEXT):
                        return self._error(400, "question is the id of a question")
                    if not well_formed(answer):
                        return self._error(400, "an answer is yes, no, skip, ignore, none, "
                                           '{"person": ID}, {"name": NAME} or {"not": [ID]}')
                    done = app.answer(question, answer)
                    return self._json(200, {"done": done, **app.state(1, self._flag("all"))})
                undone = app.undo()
                return self._json(200, {"undone": undone, **app.state(1, self._flag("all"))})
            except Busy as exc:
                return self._json(409, {"busy": str(exc)})
            except ValueError as exc:  # facedist's own word on an answer that does not fit
                said = str(exc).splitlines()[0] if str(exc) else "not an answer to this question"
                return self._error(400, said[:200])
            except FacedistError as exc:  # damage, a folder that cannot be written: one line
                return self._error(500, str(exc).splitlines()[0] if str(exc) else INTERNAL)
            except Exception:  # noqa: BLE001
                return self._internal()

        def do_PUT(self) -> None:  # noqa: N802
            self._refuse("method")

        do_DELETE = do_PATCH = do_PUT

    return Handler


def well_formed(answer) -> bool:
    """Whether `answer` has an answer's shape: a short text, {"person": ID}, {"name": NAME} or
    {"not": [face ids]} (whether it fits the question is review.plan's to say)."""
    from .config import MAX_ID

    def an_id(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID

    if isinstance(answer, str):
        return 0 < len(answer) <= MAX_TEXT
    if not isinstance(answer, dict) or len(answer) != 1:
        return False
    (key, value), = answer.items()
    if key == "person":
        return an_id(value)
    if key == "not":
        return isinstance(value, list) and 0 < len(value) <= 50 and all(map(an_id, value))
    return key == "name" and isinstance(value, str) and len(value) <= MAX_TEXT


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer with a bound on connections served at once, quiet when a client
    hangs up, and no reverse DNS lookup of 127.0.0.1 at start (HTTPServer.server_bind's)."""

    daemon_threads = True

    def __init__(self, address, handler, max_connections: int) -> None:
        self.slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request, client_address) -> None:
        if not self.slots.acquire(blocking=False):
            try:  # turned away at once, never waited on
                request.send(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\nRetry-After: 1\r\n\r\n", socket.MSG_DONTWAIT)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address) -> None:
        # socketserver prints a traceback on stderr; a client gone is no news, and anything
        # else that escapes a request (handled in Handler) is for -v
        if isinstance(sys.exc_info()[1], GONE):
            log.debug("review: a client left: %s", type(sys.exc_info()[1]).__name__)
        else:
            log.debug("review: error on a connection from %s", client_address[0], exc_info=True)


def _listen(port: int, max_connections: int) -> _Server:
    """The server listening on 127.0.0.1:port; SettingError (one line naming the port) when
    the port is taken or not allowed."""
    try:
        return _Server(("127.0.0.1", port), BaseHTTPRequestHandler, max_connections)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise SettingError(f"port {port} on 127.0.0.1 is in use: pick another with --port, "
                               f"or leave --port out for a free one") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise SettingError(f"port {port} on 127.0.0.1 is not allowed for this user (ports "
                               f"below 1024 need root): pick another with --port") from None
        raise SettingError(f"cannot listen on 127.0.0.1 port {port}: "
                           f"{exc.strerror or exc}") from None


class ReviewServer:
    """The server, started on a thread by `start` (tests) or in the foreground by `serve`.
    SettingError for a port that is not one, taken, or not allowed."""

    def __init__(self, out: str | Path, port: int = 0,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.httpd = _listen(check_port(port), max_connections)  # before the folder is read
        try:
            self.app = ReviewApp(out)
        except BaseException:
            self.httpd.server_close()
            raise
        self.token = secrets.token_urlsafe(18)
        self.httpd.RequestHandlerClass = make_handler(
            self.app, self.token, lambda: self.httpd.server_address[1])
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
