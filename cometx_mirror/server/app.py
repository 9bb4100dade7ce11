"""The HTTP layer: a ThreadingHTTPServer, request parsing, auth, faults, accounting,
and the admin endpoints (`/_admin/...`) that tests and benchmarks read.

Keep-alive HTTP/1.1, exact `Content-Type: application/json` on JSON answers (the
SDK rejects anything else, even a charset suffix).
"""
from __future__ import annotations

import json
import logging
import os
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional, Protocol
from urllib.parse import parse_qsl, urlsplit

from . import handlers_clientlib, handlers_read, handlers_registry, handlers_write  # noqa: F401 (register routes)
from . import mirror_access, web
from .accounting import Accounting
from .faults import APPLIED_STATUS, STATUS_KINDS, Faults, FaultSpecError
from .limits import LimitSpecError, Limits, limit_kind
from .routing import Request, Response, decode_body, find_route
from .state import ApiError, State

MAX_BODY = 8 << 30
log = logging.getLogger(__name__)


class Vendor(Protocol):
    """What one vendor's server adds to the shared HTTP layer (faults, accounting, limits,
    admin): its routes. `server.state` is its data (with .lock, .settings, .close())."""

    def handle(self, server: "CometServer", method: str, path: str, query: dict, headers,
               raw: bytes, base_url: str) -> Response: ...


class CometServer(ThreadingHTTPServer):
    """The HTTP server every vendor shares; `vendor` picks the routes (Comet's by default)."""
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, address, state: State, faults: Faults, accounting: Accounting,
                 limits: Optional[Limits] = None, vendor: Optional["Vendor"] = None) -> None:
        self.state = state
        self.faults = faults
        self.accounting = accounting
        self.limits = limits or Limits()
        self.vendor = vendor or CometVendor()
        super().__init__(address, Handler)

    def handle_error(self, request, client_address) -> None:
        # A client that hangs up mid-answer (a retry, a timeout, an injected reset) is
        # routine, not a server fault; socketserver's default would print a traceback
        # to stderr, into whatever output the caller is capturing.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        log.warning("request from %s failed: %s: %s", client_address[0], type(exc).__name__, exc)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes; with Nagle on, a keep-alive client's
    # delayed ACK stalls every response by ~40 ms, which real servers do not do.
    disable_nagle_algorithm = True
    server: CometServer

    def log_message(self, format, *args) -> None:  # noqa: A002 - stdlib signature
        pass  # the accounting log replaces stderr noise (and never shows keys)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # ----- one request ------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        started = time.perf_counter()
        url = urlsplit(self.path)
        path = url.path
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        raw = self._read_body()
        if path.startswith("/_admin/"):
            self._admin(method, path, query, raw)
            return
        if path == "/" or path.startswith("/ui/"):      # the page, over a mirror or the in-memory state
            self._send(web.handle(self.server.state, method, path, query, self.headers, raw))
            return
        with self.server.accounting.in_flight():
            decision = self.server.faults.decide(path)
            if decision.latency_s > 0:
                time.sleep(decision.latency_s)
            kind = decision.action.kind if decision.action is not None else None
            if kind in STATUS_KINDS:
                response = _status_fault(decision.action)
            else:
                response = self._handle(method, path, query, raw)
            if kind in APPLIED_STATUS:     # stored, but the gateway answers an error
                response = _status_fault(decision.action, APPLIED_STATUS[kind])
            cut = kind if kind in ("reset", "truncate", "applied-reset") else None
            chunks, length = response.encoded()
            sent = 0 if kind == "applied-reset" else length // 2 if cut else length
            # Record before sending: a client that reads the log right after its call must see it.
            self.server.accounting.record(
                method, path, query, response.status, len(raw), sent,
                (time.perf_counter() - started) * 1000, decision.fired)
            if kind == "applied-reset":
                self._break_connection(rst=True)
                return
            if decision.late_s > 0:        # applied-slow: the client's timeout fires first
                time.sleep(decision.late_s)
            self._send(response, cut, (chunks, length))

    def _handle(self, method: str, path: str, query: dict, raw: bytes) -> Response:
        return self.server.vendor.handle(self.server, method, path, query, self.headers, raw,
                                         self._base_url())

    def _base_url(self) -> str:
        host = self.headers.get("Host") or "%s:%s" % self.server.server_address[:2]
        return f"http://{host}"

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length else b""

    def _send(self, response: Response, cut: Optional[str] = None, encoded=None) -> int:
        chunks, length = encoded or response.encoded()
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(length))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        sent = 0
        if cut:
            # Send half the body (at least nothing more than claimed), then break the connection.
            budget = length // 2
            for chunk in chunks:
                piece = chunk[:max(0, budget - sent)]
                if piece:
                    self.wfile.write(piece)
                    sent += len(piece)
                if sent >= budget:
                    break
            self.wfile.flush()
            if cut == "reset":
                # Let the client block waiting for the rest, so it sees ECONNRESET, not a short read.
                time.sleep(0.05)
            self._break_connection(rst=(cut == "reset"))
            return sent
        try:
            for chunk in chunks:
                self.wfile.write(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        return sent

    def _break_connection(self, rst: bool) -> None:
        self.close_connection = True
        try:
            if rst:
                # SO_LINGER 0 + close() sends RST.  Close the descriptor ourselves: socketserver
                # would shut down the write side first, which sends a FIN instead.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                os.close(self.connection.detach())
            else:
                self.connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    # ----- admin ------------------------------------------------------------------------

    def _admin(self, method: str, path: str, query: dict, raw: bytes) -> None:
        srv = self.server
        name = path[len("/_admin/"):].strip("/")
        try:
            if getattr(srv.state, "read_only", False):
                mirror_access.check_admin(srv.state, method, self.headers)
            if name == "counters" and method == "GET":
                body = {**srv.accounting.counters(), "rate_limited": srv.limits.throttled_total()}
            elif name == "requests" and method == "GET":
                body = {"requests": srv.accounting.requests(int(query.get("since", 0)))}
            elif name == "reset" and method == "POST":
                srv.accounting.reset()
                srv.limits.reset_counts()
                body = {"ok": True}
            elif name == "faults" and method == "GET":
                body = srv.faults.describe()
            elif name == "faults" and method in ("POST", "PUT"):
                text = raw.decode("utf-8")
                if text.strip().startswith("{"):
                    text = json.loads(text).get("spec", "")
                srv.faults.set(text)
                body = srv.faults.describe()
            elif name == "limits" and method == "GET":
                body = srv.limits.describe()
            elif name == "limits" and method in ("POST", "PUT"):
                srv.limits.set(_spec_text(raw))
                body = srv.limits.describe()
            elif name == "settings":
                body = _settings(srv.state, method, raw)
            elif name == "health":
                body = {"ok": True}
            else:
                raise ApiError(404, f"no such admin endpoint: {method} {path}")
            response = Response(body=body)
        except (FaultSpecError, LimitSpecError) as e:
            response = Response(status=400, body={"msg": str(e)})
        except ApiError as e:
            response = Response(status=e.status, body=e.body())
        self._send(response)


class CometVendor:
    """Comet's routes (the handlers_* modules) with its key check and per-key rate limits."""

    def handle(self, server: CometServer, method: str, path: str, query: dict, headers,
               raw: bytes, base_url: str) -> Response:
        state = server.state
        family, found, path_args = find_route(method, path)
        try:
            if found is None:
                raise ApiError(404, f"no such endpoint: {method} {path}")
            if getattr(state, "read_only", False):     # a served mirror: keys checked, writes refused
                mirror_access.check(state, method, path, headers)
            req = Request(method=method, path=path, query=query, headers=headers,
                          body=decode_body(raw, headers), base_url=base_url,
                          state=state, path_args=path_args)
            if found.auth:
                req.user = state.user_for_key(req.api_key())
                if req.user is None:
                    raise _auth_error(family)
                retry_after = server.limits.admit(req.user.name, limit_kind(path))
                if retry_after is not None:   # before the handler: nothing of it is stored
                    return _rate_limited(retry_after)
            result = found.fn(req)
            return result if isinstance(result, Response) else Response(body=result)
        except ApiError as e:
            return Response(status=e.status, body=e.body())
        except Exception as e:  # a handler bug must answer 500, not kill the connection
            return Response(status=500, body={"msg": f"internal error: {type(e).__name__}: {e}"})


def _settings(state: State, method: str, raw: bytes) -> dict:
    """GET: the settings (sampling, total_fidelity, strict, ...); POST a JSON object to change some."""
    if method in ("POST", "PUT"):
        try:
            changes = json.loads(raw or b"{}")
        except ValueError:
            raise ApiError(400, "settings: the body must be a JSON object") from None
        if not isinstance(changes, dict):
            raise ApiError(400, "settings: the body must be a JSON object")
        with state.lock:
            state.settings.update(changes)
    return state.settings.as_dict()


def _auth_error(family: Optional[str]) -> ApiError:
    # REST answers 401 (SDK: Unauthorized); ingestion answers 400 + 90212 (SDK: InvalidAPIKey).
    if family == "clientlib":
        return ApiError(400, "Invalid API key", 90212)
    return ApiError(401, "Invalid API key")


def _rate_limited(retry_after: int) -> Response:
    return Response(status=429, body={"msg": "rate limit exceeded", "code": 429},
                    headers={"Retry-After": str(retry_after)})


def _spec_text(raw: bytes) -> str:
    text = raw.decode("utf-8")
    return json.loads(text).get("spec", "") if text.strip().startswith("{") else text


def _status_fault(rule, status: Optional[int] = None) -> Response:
    status = status or int(rule.kind)
    headers = {"Retry-After": str(int(rule.retry_after) if rule.retry_after == int(rule.retry_after)
                                  else rule.retry_after)} if status == 429 else {}
    return Response(status=status, body={"msg": f"injected fault {status}", "code": status}, headers=headers)


def serve_in_thread(server: CometServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name="comet-server", daemon=True)
    thread.start()
    return thread
