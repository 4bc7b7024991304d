"""The review server's edges (review_server.py), with raw sockets: a body's size and shape, a
query that is not a number, clients that hang up or trickle, too many connections, the token
compared in constant time, and `facedist review --port` values that cannot be served."""
from __future__ import annotations

import csv
import json
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from conftest import facedist_main
from synthetic import review_output

# Python's own exception texts that must never reach a client
PYTHON_TEXT = ("Expecting", "attribute", "decode", "literal", "recursion", "Traceback",
               "int()", "NoneType", "codec", "Exceeds")


@pytest.fixture
def out(tmp_path):
    o = tmp_path / "out"
    review_output(o, tmp_path / "photos", pairs=2, faces=2)
    return o


@pytest.fixture
def server(out):
    from facedist.review_server import ReviewServer

    s = ReviewServer(out).start()
    yield s
    s.stop()


def port_of(server) -> int:
    return server.httpd.server_address[1]


def head(server, method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} /{server.token}/{path} HTTP/1.1", f"Host: 127.0.0.1:{port_of(server)}",
             *[f"{k}: {v}" for k, v in headers.items()]]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def exchange(server, request: bytes, more: bytes = b"", wait: float = 5.0):
    """Send `request` (and `more` from a thread of its own, as a client that goes on sending),
    leave the connection open, and read the reply: (status or None, headers, body, seconds)."""
    s = socket.create_connection(("127.0.0.1", port_of(server)), timeout=wait)
    s.sendall(request)
    if more:
        def send_rest():
            try:
                s.sendall(more)
            except OSError:
                pass
        threading.Thread(target=send_rest, daemon=True).start()
    start, data = time.monotonic(), b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    took = time.monotonic() - start
    s.close()
    if not data.startswith(b"HTTP/"):
        return None, {}, b"", took
    top, _, body = data.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    return int(lines[0].split()[1]), headers, body, took


def post(server, body: bytes, path: str = "api/answer", **headers):
    return exchange(server, head(server, "POST", path, {"Content-Type": "application/json",
                                                        "Content-Length": str(len(body)),
                                                        **headers}) + body)


def alive(server) -> None:
    code, _, body, _ = exchange(server, head(server, "GET", "api/questions?n=1", {}))
    assert code == 200 and json.loads(body)["questions"]


def people_csv(o: Path) -> list[dict]:
    with open(o / "people.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("length, code", [("-1", 400), ("abc", 400), ("+5", 400), ("5_0", 400),
                                          (" 1e3", 400), (str(10 ** 9), 413), ("65537", 413),
                                          ("9" * 5000, 413), (None, 411)])
def test_a_content_length_that_is_missing_negative_not_a_number_or_too_large(server, length, code):
    """Refused at once, before reading the body (1 MB follows and the client keeps the
    connection open: a server reading it all, or to its end, would answer late or never)."""
    headers = {"Content-Type": "application/json"}
    if length is not None:
        headers["Content-Length"] = length
    got, reply, body, took = exchange(server, head(server, "POST", "api/answer", headers),
                                      more=b'{"question": "' + b"x" * (1 << 20))
    assert got == code, (got, body)
    assert took < 3
    assert reply.get("connection") == "close"
    assert not any(t in body.decode() for t in PYTHON_TEXT), body
    alive(server)


def test_bodies_that_are_not_a_json_object_or_answers_of_a_wrong_type(server, out):
    qid = json.loads(exchange(server, head(server, "GET", "api/questions", {}))[2])[
        "questions"][0]["id"]
    before = people_csv(out)
    for body in [b"[]", b"5", b'"yes"', b"null", b"", b"\xff\xfe{}", b'{"question": "\xff"}',
                 b"{", b"[" * 60_000, b'{"a":' * 12_000, json.dumps([qid, "yes"]).encode(),
                 json.dumps({"question": 5, "answer": "yes"}).encode(),
                 json.dumps({"question": [qid], "answer": "yes"}).encode(),
                 json.dumps({"question": qid, "answer": ["yes"]}).encode(),
                 json.dumps({"question": qid, "answer": 1}).encode(),
                 json.dumps({"question": qid, "answer": None}).encode(),
                 json.dumps({"question": qid, "answer": {"person": "x"}}).encode(),
                 json.dumps({"question": qid, "answer": {"person": True}}).encode(),
                 json.dumps({"question": qid, "answer": {"person": 2 ** 70}}).encode(),
                 json.dumps({"question": qid, "answer": {"name": 5}}).encode(),
                 json.dumps({"question": qid, "answer": {"name": "a", "person": 1}}).encode(),
                 json.dumps({"question": qid, "answer": {"x" * 100: 1}}).encode(),
                 json.dumps({"question": qid, "answer": "y" * 10_000}).encode(),
                 json.dumps({"question": "same:1:x", "answer": "yes"}).encode(),
                 json.dumps({"question": "same:" + "9" * 5000 + ":1", "answer": "yes"}).encode()]:
        code, reply, text, took = post(server, body)
        assert code == 400, (body[:60], code, text)
        error = json.loads(text)["error"]
        assert len(error) < 200 and "\n" not in error
        assert not any(t in error for t in PYTHON_TEXT), (body[:60], error)
        assert reply.get("connection") == "close"
    assert people_csv(out) == before  # nothing answered
    alive(server)


def test_a_query_or_a_face_that_is_not_a_number(server):
    for path, code in [("api/questions?n=abc", 400), ("api/questions?n=", 400),
                       ("api/questions?n=-3", 400), ("api/questions?n=1e9", 400),
                       ("api/questions?n=" + "9" * 5000, 400),
                       ("api/questions?" + "&".join(["x=1"] * 1000), 400),
                       ("face/abc.jpg", 404), ("face/" + "9" * 5000 + ".jpg", 404),
                       ("face/-1.jpg", 404), ("api/questions?n=3", 200), ("face/999999.jpg", 200)]:
        got, _, body, _ = exchange(server, head(server, "GET", path, {}))
        assert got == code, (path[:40], got, body)
        if code != 200:
            assert not any(t in body.decode() for t in PYTHON_TEXT), (path[:40], body)


def test_an_internal_error_is_500_with_no_python_text(server, monkeypatch):
    def broken(n):
        raise KeyError("secret internals")

    monkeypatch.setattr(server.app, "state", broken)
    code, _, body, _ = exchange(server, head(server, "GET", "api/questions", {}))
    assert code == 500
    assert "secret" not in body.decode() and "KeyError" not in body.decode()


def hang_up(s: socket.socket) -> None:
    """Close with a reset (RST), as a client killed mid-request."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def test_clients_that_hang_up_leave_no_traceback(server, capfd, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="facedist")
    port = port_of(server)
    for i in range(30):
        s = socket.create_connection(("127.0.0.1", port))
        kind = i % 3
        if kind == 0:  # the headers and part of the body, then a reset
            s.sendall(head(server, "POST", "api/answer", {"Content-Type": "application/json",
                                                          "Content-Length": "100"}) + b'{"q')
        elif kind == 1:  # a question, gone before the answer is written
            s.sendall(head(server, "GET", "api/questions?n=50", {}))
        else:  # half a request line
            s.sendall(b"GET /" + server.token.encode())
        time.sleep(0.02)
        hang_up(s)
    time.sleep(0.5)
    alive(server)
    time.sleep(0.2)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Error" not in err, err[-2000:]
    assert not [r for r in caplog.records if r.levelno >= logging.INFO], caplog.text[-2000:]


def test_a_request_is_bounded_in_time_and_headers(server):
    """A client that trickles its request (a byte every 0.2 s, each within the read timeout)
    is cut off when the request's time is up, and the server answers others meanwhile; headers
    keep http.server's own bounds (100 headers, 64 KiB a line)."""
    many = {f"X-{i}": "1" for i in range(150)}
    assert exchange(server, head(server, "GET", "api/questions", many))[0] == 431
    assert exchange(server, head(server, "GET", "api/questions", {"X-Big": "a" * 70_000}))[0] == 431
    assert exchange(server, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n")[0] == 414
    handler = server.httpd.RequestHandlerClass
    assert 0 < handler.timeout <= 30 and 0 < handler.request_seconds <= 60  # the defaults
    handler.timeout, handler.request_seconds = 1.0, 1.5
    s = socket.create_connection(("127.0.0.1", port_of(server)), timeout=0.2)
    start, closed = time.monotonic(), None
    request = head(server, "GET", "api/questions", {"X-Pad": "a" * 200})
    for byte in request[:-4]:
        try:
            s.send(bytes([byte]))
            if s.recv(100) == b"":
                closed = time.monotonic() - start
                break
        except TimeoutError:
            pass
        except OSError:
            closed = time.monotonic() - start
            break
        if time.monotonic() - start > 8:
            break
    s.close()
    assert closed is not None and closed < 4, closed
    alive(server)


def test_connections_beyond_the_limit_are_turned_away(out):
    from facedist.review_server import ReviewServer

    server = ReviewServer(out, max_connections=2).start()
    try:
        idle = [socket.create_connection(("127.0.0.1", port_of(server))) for _ in range(2)]
        for s in idle:
            s.sendall(b"GET /")  # each holds a thread, waiting for the rest
        time.sleep(0.3)
        code, _, _, took = exchange(server, head(server, "GET", "api/questions", {}), wait=3)
        assert code in (503, None) and took < 2  # turned away at once, not served
        for s in idle:
            s.close()
        time.sleep(0.3)
        alive(server)
    finally:
        server.stop()


def test_the_token_is_compared_in_constant_time(monkeypatch):
    """The first segment of the path is compared with compare_digest, as bytes, whatever it
    holds: no startswith short-cut that answers early for a wrong first character."""
    from facedist import review_server

    compared = []

    def compare(a, b):
        compared.append((a, b))
        return a == b

    monkeypatch.setattr(review_server.hmac, "compare_digest", compare)
    handler = review_server.make_handler(None, "tok", lambda: 8000)
    sent = []
    for path, rest in [("/xyz/api", None), ("/tok/api/questions", "api/questions"), ("/tok", None),
                       ("/tokx/", None), ("/", None), ("/to/k/", None), ("/tok/", "")]:
        h = handler.__new__(handler)
        h.client_address, h.headers, h.path = ("127.0.0.1", 1), {"Host": "127.0.0.1:8000"}, path
        h._send = lambda code, body, kind, cache=False: sent.append(code)
        compared.clear()
        assert h._allowed() == rest, path
        assert compared and all(isinstance(a, bytes) and b == b"tok" for a, b in compared), path
    assert sent == [403] * 5


def test_review_port_out_of_range(out):
    for port in ["99999", "-1", "65536", "abc", "1.5", "٣"]:
        code, stdout, err = facedist_main("review", out, "--port", port)
        assert code == 2, (port, err)
        assert len(err.strip().splitlines()) == 1 and "port" in err, err
        assert stdout == ""


def test_review_port_in_use(out):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        code, stdout, err = facedist_main("review", out, "--port", port)
    finally:
        taken.close()
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and str(port) in err and "in use" in err, err


def test_review_server_port_checked_in_the_api(out):
    from facedist.errors import SettingError
    from facedist.review_server import ReviewServer

    for port in (-1, 65536, True, "80", 1.0):
        with pytest.raises(SettingError, match="port"):
            ReviewServer(out, port)
