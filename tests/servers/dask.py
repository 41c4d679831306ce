"""A Dask scheduler and workers as an IT team starts them: ``dask scheduler`` and ``dask worker`` processes."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from distributed import Client


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def dask_processes() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A scheduler and two workers as an IT team starts them (``dask scheduler``, ``dask worker``), as processes
    of their own: (the scheduler's address, its process)."""
    address = f"tcp://127.0.0.1:{free_port()}"
    dask_cli = str(Path(sys.executable).parent / "dask")
    port = address.rsplit(":", 1)[1]
    null = subprocess.DEVNULL
    scheduler = subprocess.Popen([dask_cli, "scheduler", "--port", port, "--no-dashboard"], stdout=null, stderr=null)
    workers = subprocess.Popen(
        [dask_cli, "worker", address, "--nworkers", "2", "--nthreads", "1", "--no-dashboard"], stdout=null, stderr=null
    )
    try:
        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=30)
        yield address, scheduler
    finally:
        for process in (workers, scheduler):
            process.kill()
            process.wait()
