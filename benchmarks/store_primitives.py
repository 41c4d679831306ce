"""Time the write primitives a quarantine uses (copy, then delete) on S3 (moto) and Azure (Azurite).

    python benchmarks/store_primitives.py --objects 200

For each store it writes ``--objects`` small objects, then runs ``stat``, ``copy`` to a
quarantine key and ``delete`` of the original for each, one after another, as apply does.
It prints, as JSON, the cycles per second and the HTTP requests per cycle (counted by a
proxy in front of the server), so the cost of the store contract's checks can be compared
between versions of the adapters. Servers run on loopback; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dam_dedupe.adapter import SourceAdapter  # noqa: E402
from dam_dedupe.host import Host  # noqa: E402
from dam_dedupe.records import SourceSpec  # noqa: E402


def cycles(adapter: SourceAdapter, keys: list[str]) -> float:
    """``stat``, ``copy`` to quarantine and ``delete`` for every key; the seconds taken."""
    started = time.perf_counter()
    for key in keys:
        record = adapter.stat(key)
        assert record is not None, key
        adapter.copy(record, f"_quarantine/{key}")
        adapter.delete(record)
    return time.perf_counter() - started


def s3_figures(count: int, versioned: bool) -> dict[str, Any]:
    """Copy-and-delete cycles on a moto bucket, through the counting proxy."""
    import boto3
    from moto.server import ThreadedMotoServer

    from tests.servers.s3 import FaultProxy, aws_variables

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    proxy = FaultProxy(upstream=f"{host}:{port}")
    proxy.thread.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ.update(aws_variables(proxy.endpoint, tmp))
            admin = boto3.client("s3", endpoint_url=f"http://{host}:{port}")
            bucket = f"bench-{uuid.uuid4().hex[:12]}"
            admin.create_bucket(Bucket=bucket)
            if versioned:
                admin.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
            keys = [f"photos/{n:05d}.jpg" for n in range(count)]
            for key in keys:
                admin.put_object(Bucket=bucket, Key=key, Body=os.urandom(2048), Tagging="t=1")
            adapter = Host().open_source(SourceSpec(f"s3://{bucket}"))
            proxy.reset()
            seconds = cycles(adapter, keys)
            adapter.close()
            return {"cycles_per_s": round(count / seconds, 1), "requests_per_cycle": len(proxy.requests) / count}
    finally:
        proxy.server.shutdown()
        server.stop()


def azure_figures(count: int) -> dict[str, Any]:
    """Copy-and-delete cycles on an Azurite container, through the counting proxy."""
    from azure.storage.blob import BlobServiceClient

    from tests.servers.azurite import FaultProxy, _handler_for, connection_string, running_azurite

    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp, running_azurite(Path(tmp)) as azurite:
        port = urlsplit(azurite.endpoint).port
        assert port is not None
        state = FaultProxy(port)
        http = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(state))
        http.daemon_threads = True
        state.endpoint = f"http://127.0.0.1:{http.server_address[1]}/devstoreaccount1"
        threading.Thread(target=http.serve_forever, daemon=True).start()
        try:
            service = BlobServiceClient.from_connection_string(azurite.connection_string)
            container = service.create_container(f"bench{uuid.uuid4().hex[:12]}")
            keys = [f"photos/{n:05d}.jpg" for n in range(count)]
            for key in keys:
                container.upload_blob(key, os.urandom(2048), tags={"t": "1"})
            os.environ["AZURE_STORAGE_CONNECTION_STRING"] = connection_string(state.endpoint)
            adapter = Host().open_source(SourceSpec(f"azure://devstoreaccount1/{container.container_name}"))
            state.reset()
            seconds = cycles(adapter, keys)
            adapter.close()
            return {"cycles_per_s": round(count / seconds, 1), "requests_per_cycle": len(state.requests) / count}
        finally:
            http.shutdown()


def main() -> None:
    """Run each store in turn and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=200)
    args = parser.parse_args()
    figures = {
        "objects": args.objects,
        "s3": s3_figures(args.objects, versioned=False),
        "s3_versioned": s3_figures(args.objects, versioned=True),
        "azure": azure_figures(args.objects),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
