"""Helpers for the service tests: a real ``dam-dedupe serve`` child process on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.conftest import run_cli


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_token(workdir: Path, catalog: Path | str, name: str, *scopes: str) -> str:
    """``dam-dedupe tokens create``: the token is the last line of stdout."""
    args = [a for scope in scopes for a in ("--scope", scope)]
    result = run_cli("--catalog", str(catalog), "tokens", "create", name, *args, cwd=workdir)
    return result.stdout.strip().splitlines()[-1]


@dataclass
class Service:
    """A running service: its base URL and process."""

    url: str
    process: subprocess.Popen[bytes]
    port: int

    def get(self, path: str, token: str | None = None, **kwargs: object) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.get(self.url + path, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]

    def post(self, path: str, token: str | None = None, **kwargs: object) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(kwargs.pop("headers", {}))  # type: ignore[arg-type]
        return requests.post(self.url + path, headers=headers, timeout=60, **kwargs)  # type: ignore[arg-type]

    def check(self, token: str, body: bytes) -> requests.Response:
        return self.post("/v1/check", token, data=body, headers={"Content-Type": "image/jpeg"})


@contextmanager
def serving(workdir: Path, catalog: Path | str, config: Path | None = None) -> Iterator[Service]:
    """Start ``dam-dedupe serve`` in a child process and stop it with SIGTERM afterwards."""
    port = free_port()
    args = [sys.executable, "-m", "dam_dedupe", "--catalog", str(catalog)]
    if config is not None:
        args += ["--config", str(config)]
    process = subprocess.Popen(
        [*args, "serve", "--port", str(port)], cwd=workdir, stderr=subprocess.PIPE, env=dict(os.environ)
    )
    service = Service(f"http://127.0.0.1:{port}", process, port)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"serve exited: {process.stderr.read().decode() if process.stderr else ''}")
            try:
                if requests.get(service.url + "/v1/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("serve did not answer within 60 s")
            time.sleep(0.2)
        yield service
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def raw_request(service: Service, head: bytes, chunks: list[bytes]) -> int:
    """Send a request by hand (headers, then body pieces as far as the server lets us); return the status."""
    with socket.create_connection(("127.0.0.1", service.port), timeout=30) as sock:
        sock.sendall(head)
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except OSError:  # the server answered and closed before the whole body was sent
            pass
        answer = b""
        while b"\r\n" not in answer:
            data = sock.recv(4096)
            if not data:
                break
            answer += data
    return int(answer.split(b" ", 2)[1])
