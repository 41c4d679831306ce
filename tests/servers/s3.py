"""S3 test servers: moto in server mode, behind a fault-injecting, request-counting proxy.

The adapter talks to the proxy exactly as it would to MinIO or Ceph (``AWS_ENDPOINT_URL``);
test set-up talks to moto directly, so that the proxy's counts are the adapter's alone.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>fault-proxy</RequestId></Error>"
)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}
OBJECT_QUERY_KEYS = {"versionId", "partNumber"}


@dataclass
class FaultProxy:
    """An HTTP proxy in front of moto that fails a share of requests and counts object reads.

    Attributes:
        upstream: ``host:port`` of the moto server.
        fail_rate: share of requests answered ``503 SlowDown`` (0.0 to 1.0).
        truncate_object_gets: how many coming object GETs to cut off halfway (a dropped connection).
        requests: ``(method, path)`` of every request received.
        signers: the access key id that signed each of ``requests`` (``""`` when unsigned).
        object_gets: decoded ``/bucket/key`` of every ``GetObject`` (not listings, not tagging).
        failed: how many requests were answered 503.
        object_bytes_sent: for each object GET, the body bytes the client took before it closed
            the connection (all of them, unless it stopped reading).
        lose_answers: per HTTP method, how many coming requests to forward to moto and then
            answer 503 anyway (the write is done, its answer lost).
    """

    upstream: str
    fail_rate: float = 0.0
    truncate_object_gets: int = 0
    requests: list[tuple[str, str]] = field(default_factory=list)
    signers: list[str] = field(default_factory=list)
    object_gets: list[str] = field(default_factory=list)
    range_headers: list[str] = field(default_factory=list)
    failed: int = 0
    object_bytes_sent: list[int] = field(default_factory=list)
    lose_answers: dict[str, int] = field(default_factory=dict)
    seed: int = 20261125
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        """The proxy's URL, for ``AWS_ENDPOINT_URL``."""
        return f"http://127.0.0.1:{self.server.server_port}"

    def reset(self, fail_rate: float = 0.0) -> None:
        """Forget the counts and set the share of failed requests."""
        with self.lock:
            self.fail_rate = fail_rate
            self.truncate_object_gets = 0
            self.requests.clear()
            self.signers.clear()
            self.object_gets.clear()
            self.range_headers.clear()
            self.failed = 0
            self.lose_answers = {}
            self.object_bytes_sent.clear()
            self.rng = random.Random(self.seed)

    def lose_answer(self, method: str) -> bool:
        """Whether to answer 503 to this request after moto has done it."""
        with self.lock:
            if self.lose_answers.get(method, 0) > 0:
                self.lose_answers[method] -= 1
                return True
            return False

    def decide(self, method: str, path: str, headers: Any) -> tuple[bool, bool]:
        """Record a request; return whether to fail it and whether to cut its body off."""
        with self.lock:
            self.requests.append((method, path))
            credential = re.search(r"Credential=([^/]+)/", headers.get("Authorization", ""))
            self.signers.append(credential.group(1) if credential else "")
            fail = self.rng.random() < self.fail_rate
            if fail:
                self.failed += 1
            truncate = False
            if method == "GET" and is_object_get(path):
                self.object_gets.append(unquote(urlsplit(path).path))
                self.range_headers.append(headers.get("Range", ""))
                if not fail and self.truncate_object_gets:
                    self.truncate_object_gets -= 1
                    truncate = True
            return fail, truncate


def is_object_get(path: str) -> bool:
    """Whether a GET path reads an object's bytes (``/bucket/key``), not a listing or a subresource."""
    parts = urlsplit(path)
    bucket_and_key = parts.path.lstrip("/").split("/", 1)
    if len(bucket_and_key) < 2 or not bucket_and_key[1]:
        return False
    query = parse_qs(parts.query, keep_blank_values=True)
    return all(k in OBJECT_QUERY_KEYS or k.startswith("response-") for k in query)


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            """Stay quiet."""

        def _body(self) -> bytes | None:
            length = int(self.headers.get("Content-Length", 0) or 0)
            return self.rfile.read(length) if length else None

        def _forward(self) -> None:
            body = self._body()
            fail, truncate = proxy.decide(self.command, self.path, self.headers)
            if fail:
                self._slow_down()
                return
            conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
            finally:
                conn.close()
            if proxy.lose_answer(self.command):
                self._slow_down()
                return
            self.send_response_only(answer.status, answer.reason)
            for name, value in answer.getheaders():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            length = answer.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data))
            self.send_header("Content-Length", length)
            if truncate:
                self.send_header("Connection", "close")
                self.close_connection = True
                data = data[: len(data) // 2]
            self.end_headers()
            if self.command == "GET" and is_object_get(self.path):
                self._send_counted(data)
            else:
                self.wfile.write(data)

        def _send_counted(self, data: bytes) -> None:
            """Send an object's bytes in pieces, counting what the client took before it hung up."""
            sent = 0
            try:
                for start in range(0, len(data), 64 * 1024):
                    self.wfile.write(data[start : start + 64 * 1024])
                    sent += len(data[start : start + 64 * 1024])
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            with proxy.lock:
                proxy.object_bytes_sent.append(sent)

        def _slow_down(self) -> None:
            payload = b"" if self.command == "HEAD" else SLOW_DOWN
            self.send_response_only(503, "Slow Down")
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

    return Handler


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server on loopback for the whole session; its URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    """The fault-injecting proxy in front of moto, for the whole session."""
    proxy = FaultProxy(upstream=moto_endpoint.removeprefix("http://"))
    proxy.thread.start()
    try:
        yield proxy
    finally:
        proxy.server.shutdown()
        proxy.server.server_close()


def aws_variables(endpoint: str, tmp_dir: str) -> dict[str, str]:
    """The environment that points boto3 at ``endpoint`` with moto's test credentials, and nothing else."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": f"{tmp_dir}/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": f"{tmp_dir}/aws-credentials",
        "AWS_EC2_METADATA_DISABLED": "true",  # never ask an instance metadata service for credentials
    }


@pytest.fixture
def s3_env(s3_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> FaultProxy:
    """Point boto3 at the proxy through the standard variables; counts and faults reset."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_MAX_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in aws_variables(s3_proxy.endpoint, str(tmp_path)).items():
        monkeypatch.setenv(name, value)
    s3_proxy.reset()
    return s3_proxy


@pytest.fixture
def s3_admin(moto_endpoint: str) -> Any:
    """A boto3 client straight to moto (bypassing the proxy), for set-up and checks."""
    return boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}),
    )


@pytest.fixture
def new_bucket(s3_admin: Any) -> Callable[..., str]:
    """A factory of empty buckets with unique names; ``versioned=True`` turns versioning on."""

    def make(versioned: bool = False) -> str:
        name = f"t-{uuid.uuid4().hex[:16]}"
        s3_admin.create_bucket(Bucket=name)
        if versioned:
            s3_admin.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name

    return make


def _set_moto_auth(moto_endpoint: str, free_requests: str) -> None:
    request = urllib.request.Request(
        f"{moto_endpoint}/moto-api/reset-auth",
        data=free_requests.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


@pytest.fixture
def iam_user(moto_endpoint: str) -> Iterator[Callable[[str, list[str]], dict[str, str]]]:
    """A factory of IAM users allowed only the given S3 actions on one bucket; moto enforces IAM meanwhile.

    Returns the user's ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``. IAM checks are on
    from the first user made until the test ends.
    """
    iam = boto3.client(
        "iam",
        endpoint_url=moto_endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    enforced = False

    def make(bucket: str, actions: list[str]) -> dict[str, str]:
        nonlocal enforced
        _set_moto_auth(moto_endpoint, "inf")
        name = f"u-{uuid.uuid4().hex[:12]}"
        iam.create_user(UserName=name)
        statement = {
            "Effect": "Allow",
            "Action": actions or ["s3:GetBucketLocation"],
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        }
        policy = {"Version": "2012-10-17", "Statement": [statement]}
        iam.put_user_policy(UserName=name, PolicyName="scan", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        _set_moto_auth(moto_endpoint, "0")
        enforced = True
        return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}

    try:
        yield make
    finally:
        if enforced:
            _set_moto_auth(moto_endpoint, "inf")
