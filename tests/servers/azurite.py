"""Azurite (Azure's storage emulator) on loopback, and a fault-injecting proxy in front of it.

Azurite is the npm package pinned by ``tests/servers/package.json``; install it with
``npm ci`` in ``tests/servers``. Test modules import the fixtures explicitly::

    from tests.servers.azurite import azurite, fault_proxy  # noqa: F401

The proxy forwards every request to Azurite, answers a chosen share of them ``503
ServerBusy`` with Azure's error XML (as the real service does when it throttles), can
refuse chosen requests ``403`` with an authorisation error code (Azurite does not
enforce RBAC), can stall requests to provoke client timeouts, and counts blob content
GETs, so tests can see that a rescan downloads nothing.
"""

from __future__ import annotations

import http.client
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

SERVERS_DIR = Path(__file__).resolve().parent
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""Azurite's published development key; not a secret."""


def connection_string(endpoint: str) -> str:
    """The connection string of Azurite's development account at ``endpoint`` (``http://host:port/account``)."""
    return f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};BlobEndpoint={endpoint};"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    """Return once something accepts connections on 127.0.0.1:``port``; raise ``TimeoutError`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing answered on 127.0.0.1:{port} within {timeout:.0f} s")


@dataclass(frozen=True)
class Azurite:
    """A running Azurite blob service."""

    endpoint: str
    """``http://127.0.0.1:PORT/devstoreaccount1`` (``https`` when started with TLS)."""

    @property
    def connection_string(self) -> str:
        """The connection string of its development account."""
        return connection_string(self.endpoint)


@contextmanager
def running_azurite(location: Path, tls: tuple[Path, Path] | None = None) -> Iterator[Azurite]:
    """Run Azurite's blob service on a free loopback port, keeping its data in ``location``, until the block ends.

    With ``tls`` (a certificate and its key, PEM files) it serves HTTPS and accepts Microsoft
    Entra ID bearer tokens (``--oauth basic``: issuer, audience and lifetime are checked, the
    signature is not). Raises ``RuntimeError`` when Azurite is not installed in ``tests/servers``.
    """
    if not (SERVERS_DIR / "node_modules" / ".bin" / "azurite-blob").exists() or shutil.which("npx") is None:
        raise RuntimeError("Azurite is not installed: run `npm ci` in tests/servers (needs Node.js 18 or later)")
    port = free_port()
    command = [
        "npx",
        "azurite-blob",
        "--silent",
        "--disableTelemetry",
        "--location",
        str(location),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--skipApiVersionCheck",
    ]
    if tls is not None:
        command += ["--cert", str(tls[0]), "--key", str(tls[1]), "--oauth", "basic"]
    proc = subprocess.Popen(
        command,
        cwd=SERVERS_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # npx starts node as a child: stop the whole group
    )
    try:
        wait_for_port(port)
        scheme = "https" if tls is not None else "http"
        yield Azurite(endpoint=f"{scheme}://127.0.0.1:{port}/{ACCOUNT}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite's blob service on a free loopback port for the whole session."""
    try:
        with running_azurite(tmp_path_factory.mktemp("azurite")) as server:
            yield server
    except (RuntimeError, TimeoutError) as exc:
        pytest.fail(str(exc))


ERROR_XML = (
    '<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
    "<Message>{message}\nRequestId:{request_id}\nTime:{time}</Message></Error>"
)
_HOP_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host"})


class FaultProxy:
    """Settings and counters of the proxy; tests change the settings between requests.

    Attributes:
        fault_rate: share of requests answered ``503 ServerBusy`` (0 to 1).
        fail_next: the next this many requests are answered ``503 ServerBusy`` whatever the rate.
        refuse: ``(fragment, error code)``: requests whose path and query contain ``fragment`` are
            answered ``403`` with that code, as the service refuses an identity lacking a permission.
        retry_after_ms: if set, sent as ``x-ms-retry-after-ms`` on injected 503s.
        stall_next: the next this many requests are held ``stall_seconds`` before forwarding.
        lose_next: per HTTP method, how many coming requests to forward to Azurite and then answer
            ``503 ServerBusy`` anyway (the write is done, its answer lost).
        content_gets: blob content GETs received (Get Blob, not listings, tags or properties).
        faults: 503s injected.
        requests: every request received, as ``(method, path?query)``.
    """

    def __init__(self, upstream_port: int, seed: int = 7) -> None:
        self.upstream_port = upstream_port
        self.fault_rate = 0.0
        self.fail_next = 0
        self.refuse: tuple[str, str] | None = None
        self.retry_after_ms: int | None = None
        self.stall_next = 0
        self.stall_seconds = 0.0
        self.lose_next: dict[str, int] = {}
        self.content_gets = 0
        self.faults = 0
        self.requests: list[tuple[str, str]] = []
        self.endpoint = ""
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Back to a plain pass-through with zeroed counters."""
        with self._lock:
            self.fault_rate = 0.0
            self.fail_next = 0
            self.refuse = None
            self.retry_after_ms = None
            self.stall_next = 0
            self.stall_seconds = 0.0
            self.lose_next = {}
            self.content_gets = 0
            self.faults = 0
            self.requests = []

    def count(self, method: str, fragment: str) -> int:
        """How many requests of ``method`` had ``fragment`` in their path and query."""
        with self._lock:
            return sum(1 for m, target in self.requests if m == method and fragment in target)

    def lose_answer(self, method: str) -> bool:
        """Whether to answer 503 to this request after Azurite has done it."""
        with self._lock:
            if self.lose_next.get(method, 0) > 0:
                self.lose_next[method] -= 1
                return True
            return False

    def decide(self, method: str, target: str) -> tuple[bool, float]:
        """Record a request; return whether to fail it and how long to stall it."""
        parts = urlsplit(target)
        is_content_get = method == "GET" and parts.path.count("/") >= 3 and "comp=" not in parts.query
        with self._lock:
            self.requests.append((method, target))
            if is_content_get:
                self.content_gets += 1
            stall = 0.0
            if self.stall_next > 0:
                self.stall_next -= 1
                stall = self.stall_seconds
            fail = self.fail_next > 0 or self._random.random() < self.fault_rate
            if self.fail_next > 0:
                self.fail_next -= 1
            if fail:
                self.faults += 1
            return fail, stall


def _handler_for(state: FaultProxy) -> type[BaseHTTPRequestHandler]:
    local = threading.local()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            """Stay quiet."""

        def _upstream(self) -> http.client.HTTPConnection:
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", state.upstream_port, timeout=60)
                local.conn = conn
            return conn

        def _relay(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            fail, stall = state.decide(self.command, self.path)
            if stall:
                time.sleep(stall)
            if fail:
                self._error(503, "The server is busy.", "ServerBusy")
                return
            if state.refuse is not None and state.refuse[0] in self.path:
                self._error(403, "This request is not authorized to perform this operation.", state.refuse[1])
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
            headers["Host"] = f"127.0.0.1:{state.upstream_port}"
            if body or self.command in ("PUT", "POST"):
                headers["Content-Length"] = str(len(body))
            try:
                conn = self._upstream()
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException):
                local.conn = None
                raise
            if state.lose_answer(self.command):
                self._error(503, "The server is busy.", "ServerBusy")
                return
            self.send_response(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in _HOP_HEADERS:
                    self.send_header(key, value)
            length_header = response.getheader("Content-Length", "0") if self.command == "HEAD" else len(payload)
            self.send_header("Content-Length", str(length_header))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _error(self, status: int, message: str, code: str) -> None:
            request_id = str(uuid.uuid4())
            body = ERROR_XML.format(code=code, message=message, request_id=request_id, time=formatdate(usegmt=True))
            self.send_response(status, message)
            self.send_header("Content-Type", "application/xml")
            self.send_header("x-ms-error-code", code)
            self.send_header("x-ms-request-id", request_id)
            self.send_header("x-ms-version", "2025-11-05")
            if status == 503 and state.retry_after_ms is not None:
                self.send_header("x-ms-retry-after-ms", str(state.retry_after_ms))
            self.send_header("Content-Length", str(len(body.encode())))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body.encode())

        do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _relay

    return Handler


@pytest.fixture(scope="session")
def fault_proxy(azurite: Azurite) -> Iterator[FaultProxy]:
    """A proxy in front of Azurite on its own loopback port; ``reset()`` it at the start of a test."""
    upstream_port = urlsplit(azurite.endpoint).port
    assert upstream_port is not None
    state = FaultProxy(upstream_port)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(state))
    server.daemon_threads = True
    state.endpoint = f"http://127.0.0.1:{server.server_address[1]}/{ACCOUNT}"
    thread = threading.Thread(target=server.serve_forever, name="azure-fault-proxy", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
