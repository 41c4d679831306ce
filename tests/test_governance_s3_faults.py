"""Nothing lost on S3 (moto on loopback) when the store does what real stores do between two requests.

A small proxy sits between the adapter and moto, as a user's network would: it can refuse
writes to one key (a bucket policy denying ``PutObject``), go away for a while (an outage)
and, after forwarding a request, let someone else act on the store (another client
removing an object). The product is not told about any of it.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from dam_dedupe.catalog import SqliteCatalog, open_catalog
from dam_dedupe.config import Config, parse_config
from dam_dedupe.governance import Selection, apply_plan, approve, make_plan, undo_run
from dam_dedupe.governance.plan import Plan, write_plan
from dam_dedupe.host import Host
from dam_dedupe.scan import run_scan
from tests.governance_library import QUARANTINE, build_library
from tests.servers.s3 import SLOW_DOWN, aws_variables, moto_endpoint, new_bucket, s3_admin  # noqa: F401
from tests.test_governance_s3 import bucket_state

ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>'
)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}

Hook = Callable[[str, str, dict[str, str]], None]


@dataclass
class RuleProxy:
    """An HTTP proxy in front of moto.

    Attributes:
        upstream: ``host:port`` of the moto server.
        down: answer every request ``503 SlowDown`` (the store is away).
        refuse_put: object paths (``/bucket/key``, decoded) whose plain ``PutObject`` is answered 403.
        before: called with method, decoded path and headers before a request is forwarded; it may
            block, and when it returns ``True`` the request is dropped unanswered (the connection closed).
        after: called with method, decoded path and headers after each request moto answered 2xx.
        seen: ``(method, decoded path, copy source)`` of every request forwarded.
    """

    upstream: str
    down: bool = False
    refuse_put: set[str] = field(default_factory=set)
    before: Callable[[str, str, dict[str, str]], bool] | None = None
    after: Hook | None = None
    seen: list[tuple[str, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def copies_to(self, key_part: str) -> int:
        """How many server-side copies were made to a key containing ``key_part``."""
        return sum(1 for m, p, src in self.seen if m == "PUT" and src and key_part in p)


def _handler(proxy: RuleProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            """Stay quiet."""

        def _answer(self, status: int, payload: bytes) -> None:
            payload = b"" if self.command == "HEAD" else payload
            self.send_response_only(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length", 0) or 0)
            body = self.rfile.read(length) if length else None
            path = unquote(urlsplit(self.path).path)
            copy_source = self.headers.get("x-amz-copy-source", "")
            if proxy.down:
                return self._answer(503, SLOW_DOWN)
            if self.command == "PUT" and not copy_source and path in proxy.refuse_put and "?" not in self.path:
                return self._answer(403, ACCESS_DENIED)
            if proxy.before is not None and proxy.before(self.command, path, dict(self.headers.items())):
                self.close_connection = True
                return None
            proxy.seen.append((self.command, path, unquote(copy_source)))
            conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
            finally:
                conn.close()
            if proxy.after is not None and 200 <= answer.status < 300:
                proxy.after(self.command, path, {k.lower(): v for k, v in self.headers.items()})
            self.send_response_only(answer.status, answer.reason)
            for name, value in answer.getheaders():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            length = answer.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data))
            self.send_header("Content-Length", length)
            self.end_headers()
            self.wfile.write(data)
            return None

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

    return Handler


@pytest.fixture
def proxy(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[RuleProxy]:  # noqa: F811
    """A rule proxy in front of moto, with boto3 pointed at it through the standard variables."""
    rules = RuleProxy(upstream=moto_endpoint.removeprefix("http://"))
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_MAX_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in aws_variables(rules.endpoint, str(tmp_path)).items():
        monkeypatch.setenv(name, value)
    try:
        yield rules
    finally:
        rules.server.shutdown()
        rules.server.server_close()


@dataclass
class S3Library:
    bucket: str
    root: str
    catalog: SqliteCatalog
    host: Host
    config: Config


def put(admin: Any, bucket: str, key: str, data: bytes, multipart: bool = False) -> None:
    """Upload one object, tagged; ``multipart`` makes its ETag no MD5 (so the store has no content hash)."""
    if not multipart:
        admin.put_object(Bucket=bucket, Key=key, Body=data, Tagging="department=communications")
        return
    upload = admin.create_multipart_upload(Bucket=bucket, Key=key, Tagging="department=communications")
    part = admin.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=data)
    parts = {"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]}
    admin.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload=parts)


def s3_library(tmp_path: Path, admin: Any, bucket: str, multipart_canonicals: bool = False) -> S3Library:
    """The governance library under ``s3://BUCKET/lib``, scanned; requests retried twice at most."""
    build_library(tmp_path / "lib")
    for path in sorted((tmp_path / "lib").rglob("*")):
        if path.is_file():
            key = f"lib/{path.relative_to(tmp_path / 'lib')}"
            put(admin, bucket, key, path.read_bytes(), multipart=multipart_canonicals and "品牌" in key)
    root = f"s3://{bucket}/lib"
    config = parse_config(
        {
            "sources": {"lib": {"uri": root, "retry_attempts": 2}},
            "matching": {"preset": "exact"},
            "policy": {"authoritative": [f"{root}/品牌"]},
        }
    )
    catalog, host = open_catalog(tmp_path / "catalog.sqlite"), Host()
    run_scan(list(config.sources.values()), catalog, host, config, workers=1)
    return S3Library(bucket, root, catalog, host, config)


def approved(lib: S3Library, action: str, params: dict[str, str] | None = None) -> Plan:
    plan = make_plan(lib.catalog, lib.host, lib.config, action, params or {}, Selection(), by="ana")
    approve(lib.catalog, lib.config, plan, by="lee", role="legal")
    return plan


def test_an_original_removed_by_someone_else_between_copy_and_delete_keeps_its_copy(
    proxy: RuleProxy,
    s3_admin: Any,
    new_bucket: Any,
    tmp_path: Path,  # noqa: F811
) -> None:
    lib = s3_library(tmp_path, s3_admin, new_bucket())
    start = bucket_state(s3_admin, lib.bucket)
    plan = approved(lib, "quarantine")

    def someone_removes_the_source(method: str, path: str, headers: dict[str, str]) -> None:
        source = unquote(headers.get("x-amz-copy-source", "")).lstrip("/")
        if method == "PUT" and source and f"/{QUARANTINE}/" in path:
            bucket, key = source.split("/", 1)
            s3_admin.delete_object(Bucket=bucket, Key=key.split("?")[0])

    proxy.after = someone_removes_the_source
    report = apply_plan(lib.catalog, lib.host, lib.config, plan, by="ana", out_dir=tmp_path)
    proxy.after = None

    assert report.count("applied") == len(plan.steps) == 6, [r.reason for r in report.results]
    after = bucket_state(s3_admin, lib.bucket)
    for step in plan.steps:  # gone from its key, and its bytes held intact in quarantine
        assert f"lib/{step.target.key}" not in after
        assert after[f"lib/{step.params['quarantine_key']}"][0] == start[f"lib/{step.target.key}"][0]
    undone = undo_run(lib.catalog, lib.host, lib.config, report.run_id, by="ana")
    assert undone.count("undone") == len(plan.steps), [r.reason for r in undone.results]
    assert bucket_state(s3_admin, lib.bucket) == start
    lib.catalog.close()


def test_a_redirect_whose_pointer_is_refused_after_the_original_went_is_undone_in_full(
    proxy: RuleProxy,
    s3_admin: Any,
    new_bucket: Any,
    tmp_path: Path,  # noqa: F811
) -> None:
    lib = s3_library(tmp_path, s3_admin, new_bucket())
    start = bucket_state(s3_admin, lib.bucket)
    plan = approved(lib, "redirect", {"pointer": "stub"})
    refused = next(s for s in plan.steps if s.target.key == "Marketing 2026/IMG_4001.JPG")
    proxy.refuse_put = {f"/{lib.bucket}/lib/{refused.target.key}"}  # a policy denies writes to that key only

    report = apply_plan(lib.catalog, lib.host, lib.config, plan, by="ana", out_dir=tmp_path)

    outcomes = {r.step.index: r.outcome for r in report.results}
    assert outcomes.pop(refused.index) == "failed"
    assert set(outcomes.values()) == {"applied"}
    after = bucket_state(s3_admin, lib.bucket)
    assert after[f"lib/{refused.params['quarantine_key']}"][0] == start[f"lib/{refused.target.key}"][0]
    entries = manifest_entries(s3_admin, lib.bucket, report.run_id)
    assert {e["original_key"]: e.get("incomplete") for e in entries} == {
        s.target.key: ("failed" if s.index == refused.index else None) for s in plan.steps
    }  # the quarantine copy that now stands for the refused original is in the run's manifest

    proxy.refuse_put = set()
    undone = undo_run(lib.catalog, lib.host, lib.config, report.run_id, by="ana")

    assert undone.count("undone") == len(plan.steps), [r.reason for r in undone.results]
    assert bucket_state(s3_admin, lib.bucket) == start


def test_a_multipart_canonical_overwritten_with_same_size_content_stops_its_cluster(
    proxy: RuleProxy,
    s3_admin: Any,
    new_bucket: Any,
    tmp_path: Path,  # noqa: F811
) -> None:
    lib = s3_library(tmp_path, s3_admin, new_bucket(), multipart_canonicals=True)
    plan = approved(lib, "quarantine")
    step = next(s for s in plan.steps if s.canonical.key == "品牌/master_0.jpg")
    assert step.canonical.store_hash is None  # a multipart ETag is no content hash: only bytes can tell
    original = s3_admin.get_object(Bucket=lib.bucket, Key="lib/品牌/master_0.jpg")["Body"].read()
    other = bytes(reversed(original))
    put(s3_admin, lib.bucket, "lib/品牌/master_0.jpg", other, multipart=True)
    before = bucket_state(s3_admin, lib.bucket)

    report = apply_plan(lib.catalog, lib.host, lib.config, plan, by="ana", out_dir=tmp_path)

    in_cluster = [r for r in report.results if r.step.cluster == step.cluster]
    assert in_cluster and all(r.outcome == "skipped" and "other content" in r.reason for r in in_cluster)
    after = bucket_state(s3_admin, lib.bucket)
    for result in in_cluster:
        assert after[f"lib/{result.step.target.key}"] == before[f"lib/{result.step.target.key}"]
    assert all(r.outcome == "applied" for r in report.results if r.step.cluster != step.cluster)
    lib.catalog.close()


def manifest_entries(admin: Any, bucket: str, run_id: str) -> list[dict[str, Any]]:
    """The entries of a run's quarantine manifest in the bucket."""
    body = admin.get_object(Bucket=bucket, Key=f"lib/{QUARANTINE}/manifests/{run_id}.json")["Body"].read()
    return list(json.loads(body)["entries"])


def _outage_after_first_copy(proxy: RuleProxy) -> None:
    """The store goes away right after the run's first quarantine copy is made (before its original goes)."""

    def go_down(method: str, path: str, headers: dict[str, str]) -> None:
        if method == "PUT" and headers.get("x-amz-copy-source") and f"/{QUARANTINE}/" in path:
            proxy.down, proxy.after = True, None

    proxy.after = go_down


def test_an_outage_mid_step_leaves_the_run_resumable_and_apply_again_finishes_it(
    proxy: RuleProxy,
    s3_admin: Any,
    new_bucket: Any,
    tmp_path: Path,  # noqa: F811
) -> None:
    lib = s3_library(tmp_path, s3_admin, new_bucket())
    start = bucket_state(s3_admin, lib.bucket)
    plan = approved(lib, "quarantine")
    _outage_after_first_copy(proxy)

    first = apply_plan(lib.catalog, lib.host, lib.config, plan, by="ana", out_dir=tmp_path)

    assert not first.finished and first.count("interrupted") == len(plan.steps)
    assert lib.catalog.action_run(first.run_id).status == "running"  # type: ignore[union-attr]
    proxy.down = False
    second = apply_plan(lib.catalog, lib.host, lib.config, plan, by="ana", out_dir=tmp_path)

    assert second.finished and second.resumed and second.run_id == first.run_id
    assert second.count("applied") == len(plan.steps), [r.reason for r in second.results]
    for step in plan.steps:  # nothing done twice: one server-side copy per duplicate
        assert proxy.copies_to(step.params["quarantine_key"]) == 1
    entries = manifest_entries(s3_admin, lib.bucket, first.run_id)
    assert sorted(e["original_key"] for e in entries) == sorted(s.target.key for s in plan.steps)
    undone = undo_run(lib.catalog, lib.host, lib.config, first.run_id, by="ana")
    assert undone.count("undone") == len(plan.steps)
    assert bucket_state(s3_admin, lib.bucket) == start
    lib.catalog.close()


def test_undo_of_a_run_interrupted_mid_step_restores_what_that_step_did(
    proxy: RuleProxy,
    s3_admin: Any,
    new_bucket: Any,
    tmp_path: Path,  # noqa: F811
) -> None:
    lib = s3_library(tmp_path, s3_admin, new_bucket())
    start = bucket_state(s3_admin, lib.bucket)
    plan = approved(lib, "quarantine")
    _outage_after_first_copy(proxy)
    first = apply_plan(lib.catalog, lib.host, lib.config, plan, by="ana", out_dir=tmp_path)
    assert first.count("interrupted") == len(plan.steps)
    assert bucket_state(s3_admin, lib.bucket) != start  # the first copy was made

    proxy.down = False
    undone = undo_run(lib.catalog, lib.host, lib.config, first.run_id, by="ana")

    assert undone.finished and undone.count("undone") == 1, [r.reason for r in undone.results]
    assert bucket_state(s3_admin, lib.bucket) == start
    again = apply_plan(lib.catalog, lib.host, lib.config, plan, by="ana", out_dir=tmp_path)
    assert again.run_id != first.run_id and again.count("applied") == len(plan.steps)
    lib.catalog.close()


@pytest.mark.parametrize("then", ["apply", "undo"])
def test_a_redirect_killed_between_removing_the_original_and_writing_its_pointer_is_finished_or_undone(
    proxy: RuleProxy,
    s3_admin: Any,
    new_bucket: Any,
    tmp_path: Path,
    then: str,  # noqa: F811
) -> None:
    lib = s3_library(tmp_path, s3_admin, new_bucket())
    start = bucket_state(s3_admin, lib.bucket)
    plan = approved(lib, "redirect", {"pointer": "stub"})
    write_plan(plan, tmp_path / "plan.json")
    (tmp_path / "dam-dedupe.toml").write_text(f'[sources.lib]\nuri = "{lib.root}"\nretry_attempts = 2\n', "utf-8")
    target = plan.steps[0]
    pointer_path = f"/{lib.bucket}/lib/{target.target.key}"
    reached = threading.Event()

    def hold_the_pointer_write(method: str, path: str, headers: dict[str, str]) -> bool:
        if method == "PUT" and path == pointer_path and not headers.get("x-amz-copy-source"):
            reached.set()
            return True  # never forwarded: the process is killed while it waits for the answer
        return False

    proxy.before = hold_the_pointer_write
    catalog = str(tmp_path / "catalog.sqlite")
    command = [sys.executable, "-m", "dam_dedupe", "--catalog", catalog, "apply", "plan.json", "--by", "ana"]
    quiet = subprocess.DEVNULL
    process = subprocess.Popen(command, cwd=tmp_path, env=dict(os.environ), stdout=quiet, stderr=quiet)
    try:
        assert reached.wait(120), "apply never came to write the pointer"
    finally:
        process.kill()
        process.wait()
    proxy.before = None
    killed = bucket_state(s3_admin, lib.bucket)
    assert f"lib/{target.target.key}" not in killed  # the original went, its pointer never came
    assert killed[f"lib/{target.params['quarantine_key']}"][0] == start[f"lib/{target.target.key}"][0]

    if then == "apply":
        report = apply_plan(lib.catalog, lib.host, lib.config, plan, by="ana", out_dir=tmp_path)
        assert report.resumed and report.finished and report.count("applied") == len(plan.steps)
        stub = s3_admin.get_object(Bucket=lib.bucket, Key=f"lib/{target.target.key}")["Body"].read()
        assert json.loads(stub)["redirect_to"] == target.canonical.uri
        assert not any(k.endswith(".dam-dedupe-pointer") for k in bucket_state(s3_admin, lib.bucket))
        run_id = report.run_id
    else:
        run_id = next(r.id for r in lib.catalog.action_runs(plan.id) if r.kind == "apply")
    undone = undo_run(lib.catalog, lib.host, lib.config, run_id, by="ana")
    assert undone.finished and not undone.count("failed"), [r.reason for r in undone.results]
    assert bucket_state(s3_admin, lib.bucket) == start
    lib.catalog.close()


def test_an_outage_during_undo_leaves_it_resumable_and_undo_again_finishes_it(
    proxy: RuleProxy,
    s3_admin: Any,
    new_bucket: Any,
    tmp_path: Path,  # noqa: F811
) -> None:
    lib = s3_library(tmp_path, s3_admin, new_bucket())
    start = bucket_state(s3_admin, lib.bucket)
    plan = approved(lib, "quarantine")
    applied = apply_plan(lib.catalog, lib.host, lib.config, plan, by="ana", out_dir=tmp_path)

    def go_down_after_first_restore(method: str, path: str, headers: dict[str, str]) -> None:
        if method == "PUT" and headers.get("x-amz-copy-source") and f"/{QUARANTINE}/" not in path:
            proxy.down, proxy.after = True, None

    proxy.after = go_down_after_first_restore
    first = undo_run(lib.catalog, lib.host, lib.config, applied.run_id, by="ana")
    assert not first.finished and first.count("interrupted") == len(plan.steps)
    proxy.down = False
    second = undo_run(lib.catalog, lib.host, lib.config, applied.run_id, by="ana")

    assert second.resumed and second.finished and second.run_id == first.run_id
    assert second.count("undone") == len(plan.steps), [r.reason for r in second.results]
    assert bucket_state(s3_admin, lib.bucket) == start
    lib.catalog.close()
