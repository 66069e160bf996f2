"""`charrnn serve`: a loaded model behind HTTP, for editors, scripts and pages.

    POST /generate  {"prime": "ROMEO:", "length": 200, "temperature": 0.8, "seed": 1}
                    -> {"text": ...}; with "stream": true, server-sent events,
                       one `data: {"text": ...}` per flush, then `event: done`
    POST /score     {"text": ...} -> {"chars", "total_nats", "mean_nats", "bits_per_char", "skipped"}
    GET  /health    -> the model, the limits, and the requests in flight

Built on the standard library's ThreadingHTTPServer: one thread per
connection, all sharing one Model (api.py), which keeps each call's state to
itself. The same controls and seed give the text `charrnn sample` prints.
Generations that ask for no particular text (no seed, a temperature above
0) are stepped together as one batch by one thread (batching.py), which
serves many clients at once far faster than stepping each alone; the
others run in their request's thread, exactly as `charrnn sample`.

Nothing a client sends can take the server down: a body that is not JSON, an
unknown control, a bad value or a character the model has never seen gets a
4xx with a one-line JSON error; a body over the size limit is refused before
it is read; a generation stops at the length limit and the time limit; a
client that goes away mid-stream ends its generation and frees its slot.
"""

from __future__ import annotations

import json
import threading
import time
import sys
import traceback
from dataclasses import asdict, dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .api import Model, sample_config
from .batching import Batcher
from .errors import CharRNNError

GENERATE_CONTROLS = {"prime", "length", "temperature", "top_k", "top_p", "seed", "stop", "unknown", "stream"}
SCORE_FIELDS = {"text", "unknown"}
BACKLOG = 128  # connections the kernel holds while every thread is busy accepting
FLUSH_SECONDS = 0.02  # a stream sends what it has at most this often, so a fast model is not one event per character


@dataclass(frozen=True)
class Limits:
    max_length: int = 2000  # characters one request may generate
    max_seconds: float = 30.0  # a generation stops here, with what it has
    max_body: int = 1 << 20  # bytes of a request body
    max_requests: int = 32  # requests in flight at once; more get 503


class Service:
    """The model and what the handlers share: the limits and the slots."""

    def __init__(self, model: Model, limits: Limits = Limits(), batch: bool = True):
        self.model, self.limits = model, limits
        self.slots = threading.BoundedSemaphore(limits.max_requests)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.batcher = Batcher(model.net, model.vocab) if batch else None

    def health(self) -> dict:
        c = self.model.config
        return {"model": str(self.model.path), "kind": c.kind, "layers": c.layers, "hidden": c.hidden,
                "vocab": self.model.chars, "limits": asdict(self.limits), "in_flight": self.in_flight,
                "batching": self.batcher is not None,
                "batched": self.batcher.in_flight if self.batcher else 0}  # fmt: skip

    def generation(self, prime: str, config):
        """The characters of one sample, a list of one per step: batched with
        the others in flight where the request asked for no particular text,
        else stepped alone as `charrnn sample` steps it. The prime is checked
        before this returns."""
        if self.batcher is not None and config.seed is None and config.temperature > 0 and config.beam is None:
            return self.batcher.submit(prime, config)
        return self.model.columns(prime, config)

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()


class ClientError(Exception):
    """A request the server refuses: its status and a one-line message."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def make_server(service: Service, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """A server bound to (host, port) (port 0: any free one), not yet serving."""

    class Handler(_Handler):
        pass

    class Server(ThreadingHTTPServer):
        request_queue_size = BACKLOG  # socketserver's default, 5, resets the 6th client to connect at once

    Handler.service = service
    server = Server((host, port), Handler)
    server.daemon_threads = True  # a stalled client never keeps the process from exiting
    return server


class _Handler(BaseHTTPRequestHandler):
    service: Service
    protocol_version = "HTTP/1.1"
    server_version = "charrnn"

    def log_message(self, format, *args) -> None:  # noqa: A002  (the base class's name)
        pass  # one line per request on stderr would drown the server's own; a proxy logs requests

    def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
        if self.path != "/health":
            return self._error(HTTPStatus.NOT_FOUND, f"no such endpoint: GET {self.path}")
        self._json(HTTPStatus.OK, self.service.health())

    def do_POST(self) -> None:  # noqa: N802
        routes = {"/generate": self._generate, "/score": self._score}
        if self.path not in routes:
            return self._error(HTTPStatus.NOT_FOUND, f"no such endpoint: POST {self.path}")
        if not self.service.slots.acquire(blocking=False):
            return self._error(HTTPStatus.SERVICE_UNAVAILABLE, "too many requests in flight: try again")
        with self.service.lock:
            self.service.in_flight += 1
        try:
            routes[self.path](self._body())
        except ClientError as e:
            self._error(e.status, str(e))
        except CharRNNError as e:
            self._error(HTTPStatus.BAD_REQUEST, str(e))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client left; its generation has ended with the write that failed
        except Exception:  # a fault of ours: this request fails, the server goes on  # noqa: BLE001
            traceback.print_exc(file=sys.stderr)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "the server failed on this request (its log says why)")
        finally:
            with self.service.lock:
                self.service.in_flight -= 1
            self.service.slots.release()

    # -- endpoints -------------------------------------------------------------

    def _generate(self, body: dict) -> None:
        _only(body, GENERATE_CONTROLS)
        controls = {k: v for k, v in body.items() if k not in ("prime", "stream")}
        prime = _text(body.get("prime", ""), "prime")
        length = controls.setdefault("length", 500)
        if not isinstance(length, int) or isinstance(length, bool) or length > self.service.limits.max_length:
            raise ClientError(HTTPStatus.BAD_REQUEST,
                              f"length must be an integer up to {self.service.limits.max_length}")  # fmt: skip
        config = sample_config(**controls)
        pieces = self.service.generation(prime, config)  # the prime is checked here, before anything is sent
        deadline = time.monotonic() + self.service.limits.max_seconds
        if body.get("stream"):
            return self._stream(pieces, deadline)
        text, stopped = _collect(pieces, deadline)
        self._json(HTTPStatus.OK, {"text": text, **({"stopped": stopped} if stopped else {})})

    def _stream(self, pieces, deadline: float) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")  # the stream's end is the connection's
        self.end_headers()
        self.close_connection = True
        pending, last = [], time.monotonic()
        stopped = ""
        try:
            for chars in pieces:
                pending.append(chars[0])
                now = time.monotonic()
                if now > deadline:
                    stopped = "time limit"
                    break
                if now - last >= FLUSH_SECONDS:
                    self._event({"text": "".join(pending)})
                    pending, last = [], now
            if pending:
                self._event({"text": "".join(pending)})
            self._event({"stopped": stopped} if stopped else {}, "done")
        finally:
            pieces.close()  # a client gone mid-stream: the generator ends here, not at the length

    def _score(self, body: dict) -> None:
        _only(body, SCORE_FIELDS)
        if "text" not in body:
            raise ClientError(HTTPStatus.BAD_REQUEST, "give the text to score: {\"text\": ...}")
        scored = self.service.model.score(_text(body["text"], "text"), body.get("unknown", "error"))
        self._json(HTTPStatus.OK, scored.to_dict())

    # -- reading and writing ------------------------------------------------------

    def _body(self) -> dict:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise ClientError(HTTPStatus.LENGTH_REQUIRED, "a JSON body with a Content-Length is required")
        if int(length) > self.service.limits.max_body:
            self.close_connection = True  # the body is not read, so the connection cannot be reused
            raise ClientError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                              f"the body is over {self.service.limits.max_body:,} bytes")  # fmt: skip
        raw = self.rfile.read(int(length))
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ClientError(HTTPStatus.BAD_REQUEST, f"the body is not JSON: {e}") from None
        if not isinstance(body, dict):
            raise ClientError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
        return body

    def _json(self, status: HTTPStatus, payload: dict) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._json(status, {"error": " ".join(message.split())})  # one line, whatever the message held

    def _event(self, payload: dict, name: str | None = None) -> None:
        head = f"event: {name}\n" if name else ""
        self.wfile.write(f"{head}data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode("utf-8"))
        self.wfile.flush()


def _only(body: dict, allowed: set[str]) -> None:
    if unknown := sorted(set(body) - allowed):
        raise ClientError(HTTPStatus.BAD_REQUEST, f"unknown field {unknown[0]!r}: choose from {', '.join(sorted(allowed))}")


def _text(value, name: str) -> str:
    if not isinstance(value, str):
        raise ClientError(HTTPStatus.BAD_REQUEST, f"{name} must be a string")
    return value


def _collect(pieces, deadline: float) -> tuple[str, str]:
    """The whole sample, or what the time limit left of it, and why it stopped early ("" if it did not)."""
    out = []
    try:
        for chars in pieces:
            out.append(chars[0])
            if time.monotonic() > deadline:
                return "".join(out), "time limit"
    finally:
        pieces.close()
    return "".join(out), ""
