"""A fault-injecting HTTP(S) proxy that sits between the product and a real storage server.

The product is pointed at the proxy exactly as a user points it at a gateway, through the
endpoint settings its adapters already read, so no switch inside the product is involved:

- S3 (moto): ``AWS_ENDPOINT_URL=<proxy.endpoint>``.
- Azure Blob (Azurite): ``AZURE_STORAGE_CONNECTION_STRING`` with
  ``BlobEndpoint=<proxy.endpoint>/devstoreaccount1`` (:func:`tests.servers.azurite.connection_string`).
- SharePoint (the Graph emulator): ``DAM_DEDUPE_GRAPH_ENDPOINT=<proxy.endpoint>``; the proxy
  terminates TLS with a certificate from the emulator's test CA (``server_tls``) and talks HTTPS
  to the emulator (``upstream_tls``), so ``DAM_DEDUPE_CA_BUNDLE`` stays the emulator's CA. Sign-in
  (``AZURE_AUTHORITY_HOST``) goes to the emulator directly, so token requests are not counted.

It forwards every request and records it. *Writes* are ``PUT``, ``POST``, ``PATCH`` and
``DELETE``; a ``PUT`` carrying ``x-amz-copy-source`` or ``x-ms-copy-source`` is labelled
``COPY``. Writes are numbered from 1 since the last :meth:`FaultProxy.reset`, and on command
the proxy acts on the N-th one:

- :meth:`FaultProxy.lose_answer`: the request **is performed on the real server**, then its
  answer is lost: the client gets ``500`` (with the store's error body) or a dropped connection.
  The client cannot tell whether the write happened, as after a real network fault.
- :meth:`FaultProxy.hold`: the request is held, before it is forwarded (the server never sees it)
  or after the server answered but before the answer is relayed, until the test releases it. A
  test kills the client process meanwhile, so the kill lands exactly at that write.

Only loopback is served; at most ``max_connections`` connections are handled at once.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

WRITE_METHODS = frozenset({"PUT", "POST", "PATCH", "DELETE"})
COPY_HEADERS = ("x-amz-copy-source", "x-ms-copy-source")
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade", "expect", "content-length"}
)


@dataclass(frozen=True)
class ErrorAnswer:
    """The ``500`` a store sends when it fails internally: content type, body and extra headers."""

    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


S3_ERROR = ErrorAnswer(
    "application/xml",
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message><RequestId>fault</RequestId></Error>",
)
AZURE_ERROR = ErrorAnswer(
    "application/xml",
    b'<?xml version="1.0" encoding="utf-8"?><Error><Code>InternalError</Code>'
    b"<Message>The server encountered an internal error. Please retry the request.</Message></Error>",
    (("x-ms-error-code", "InternalError"),),
)
GRAPH_ERROR = ErrorAnswer(
    "application/json",
    b'{"error": {"code": "generalException", "message": "An unspecified error has occurred."}}',
)


@dataclass(frozen=True)
class Write:
    """One write the proxy saw: its number, label (``PUT``, ``COPY``, ...), path and the server's status."""

    index: int
    label: str
    path: str
    status: int | None

    def __str__(self) -> str:
        return f"write {self.index}: {self.label} {self.path} -> {self.status}"


@dataclass
class Hold:
    """A write held by the proxy: ``reached`` is set when it arrives, the proxy waits for ``release``."""

    index: int
    after_answer: bool
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    write: Write | None = None

    def release(self) -> None:
        """Let the held request go on (its client is usually dead by then)."""
        self.released.set()


class FaultProxy:
    """A threaded loopback proxy in front of ``upstream`` that counts requests and loses or holds writes.

    Args:
        upstream: the real server, ``http://host:port`` or ``https://host:port``.
        error: what an injected ``500`` looks like (:data:`S3_ERROR`, :data:`AZURE_ERROR`, :data:`GRAPH_ERROR`).
        server_tls: serve HTTPS with this context (a certificate the client trusts).
        upstream_tls: the context that verifies an HTTPS upstream.
        max_connections: connections handled at once; more wait to be accepted.
    """

    def __init__(
        self,
        upstream: str,
        error: ErrorAnswer = S3_ERROR,
        server_tls: ssl.SSLContext | None = None,
        upstream_tls: ssl.SSLContext | None = None,
        max_connections: int = 16,
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream_https = parts.scheme == "https"
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or (443 if self.upstream_https else 80)
        self.error = error
        self.server_tls = server_tls
        self.upstream_tls = upstream_tls
        self.lock = threading.Lock()
        self.slots = threading.BoundedSemaphore(max_connections)
        self.requests: list[tuple[str, str]] = []
        self.writes: list[Write] = []
        self._lose: dict[int, str] = {}
        self._holds: dict[int, Hold] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def endpoint(self) -> str:
        """The proxy's base URL (``https://localhost:PORT`` when it serves TLS, as the test CA names it)."""
        port = self.server.server_address[1]
        return f"https://localhost:{port}" if self.server_tls else f"http://127.0.0.1:{port}"

    def start(self) -> FaultProxy:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release every hold and stop serving."""
        self.reset()
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        """Forget counts and commands; writes are numbered from 1 again. Held requests are released."""
        with self.lock:
            for hold in self._holds.values():
                hold.release()
            self.requests = []
            self.writes = []
            self._lose = {}
            self._holds = {}

    def lose_answer(self, index: int, how: str = "500") -> None:
        """Perform the ``index``-th write (from 1) on the server, then answer ``500`` (``how="500"``) or drop
        the connection (``how="drop"``)."""
        if how not in ("500", "drop"):
            raise ValueError(f"how must be '500' or 'drop', not {how!r}")
        with self.lock:
            self._lose[index] = how

    def hold(self, index: int, after_answer: bool = False) -> Hold:
        """Hold the ``index``-th write (from 1) before forwarding it, or with ``after_answer`` once the server
        has answered but before the answer is relayed; returns the :class:`Hold` to wait on and release."""
        hold = Hold(index, after_answer)
        with self.lock:
            self._holds[index] = hold
        return hold

    def counts(self) -> Counter[tuple[str, str]]:
        """Requests received, by method and path (without the query)."""
        with self.lock:
            return Counter((method, urlsplit(target).path) for method, target in self.requests)

    def write_count(self) -> int:
        """Writes received since the last reset."""
        with self.lock:
            return len(self.writes)

    def _arrive(self, method: str, target: str, headers: http.client.HTTPMessage) -> tuple[int, str, Hold | None]:
        """Record a request; for a write return its number, what to do with its answer and its hold."""
        with self.lock:
            self.requests.append((method, target))
            if method not in WRITE_METHODS:
                return 0, "", None
            index = len(self.writes) + 1
            label = "COPY" if method == "PUT" and any(h in headers for h in COPY_HEADERS) else method
            self.writes.append(Write(index, label, urlsplit(target).path, None))
            return index, self._lose.get(index, ""), self._holds.get(index)

    def _answered(self, index: int, status: int) -> Write:
        with self.lock:
            write = self.writes[index - 1]
            self.writes[index - 1] = Write(write.index, write.label, write.path, status)
            return self.writes[index - 1]

    def _upstream(self) -> http.client.HTTPConnection:
        if self.upstream_https:
            return http.client.HTTPSConnection(
                self.upstream_host, self.upstream_port, timeout=60, context=self.upstream_tls
            )
        return http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body, whether sent with ``Content-Length`` or chunked."""
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            """Stay quiet."""

        def setup(self) -> None:
            proxy.slots.acquire()
            if proxy.server_tls is not None:  # handshake here, in the connection's own thread
                self.request = proxy.server_tls.wrap_socket(self.request, server_side=True)
            super().setup()

        def finish(self) -> None:
            try:
                super().finish()
            finally:
                proxy.slots.release()

        def handle(self) -> None:
            with suppress(OSError):  # the client went away (or was killed): nothing to answer
                super().handle()

        def _forward(self) -> None:
            body = _read_body(self)
            index, lose, hold = proxy._arrive(self.command, self.path, self.headers)
            if hold is not None and not hold.after_answer:
                hold.reached.set()
                hold.released.wait()
                self._drop()  # the client died before the request left it: the server never sees it
                return
            status, reason, headers, data = self._ask_upstream(body)
            if index:
                write = proxy._answered(index, status)
                if hold is not None:
                    hold.write = write
                    hold.reached.set()
                    hold.released.wait()
            if lose == "drop":
                self._drop()
            elif lose == "500":
                self._send(
                    500,
                    "Internal Server Error",
                    [("Content-Type", proxy.error.content_type), *proxy.error.headers],
                    proxy.error.body,
                )
            else:
                self._send(status, reason, headers, data, head_length=headers)

        def _ask_upstream(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            if body or self.command in WRITE_METHODS:
                headers["Content-Length"] = str(len(body))
            conn = proxy._upstream()
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                return answer.status, answer.reason, answer.getheaders(), data
            finally:
                conn.close()

        def _send(
            self,
            status: int,
            reason: str,
            headers: list[tuple[str, str]],
            data: bytes,
            head_length: list[tuple[str, str]] | None = None,
        ) -> None:
            self.send_response_only(status, reason)
            for name, value in headers:
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            if self.command == "HEAD":
                upstream_length = dict((k.lower(), v) for k, v in (head_length or [])).get("content-length", "0")
                self.send_header("Content-Length", upstream_length)
            else:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            self.wfile.flush()

        def _drop(self) -> None:
            self.close_connection = True
            with suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _forward

    return Handler


@contextmanager
def running_proxy(upstream: str, **options: object) -> Iterator[FaultProxy]:
    """A started :class:`FaultProxy` in front of ``upstream`` until the block ends (options as its constructor)."""
    proxy = FaultProxy(upstream, **options)  # type: ignore[arg-type]
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
