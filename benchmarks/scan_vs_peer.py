"""The whole default scan against imagededup's hashing of the same files, end to end.

    python benchmarks/corpus.py CORPUS            # the accuracy corpus, once
    python benchmarks/scan_vs_peer.py CORPUS --repeat 3 --workers 2

Each repeat runs, back to back on the same cores:

- ``ours (analysers on)``: ``dam-dedupe scan CORPUS`` into a new catalog, with every
  installed analyser (``pip install '.[all]'`` turns face detection on);
- ``ours (analysers off)``: the same with ``[analysis] disabled = ["faces", "rights"]``;
- ``imagededup``: ``PHash().encode_images`` over the folder with as many workers, then
  ``find_duplicates`` (threshold 10, its default).

Each runs in a fresh child process. Wall time is that child's, start to exit; CPU time is
the child's and every process under it (user and system; the fork server our workers are
forked from, and the workers, are counted on Linux, where this script reaps them), which a
shared machine's load changes less than wall time; peak memory is the largest resident set of
the child or of any one process under it. Our scan runs
through the real command line (``dam_dedupe.cli.main``) with timers wrapped around the
scan's stages from outside: *list* (the adapter's listing), *read+fingerprint* (waiting
for the workers, which read, hash, decode, fingerprint and analyse), *match* (grouping,
canonicals, evidence; matchscale's work), *catalog* (writing listings, fingerprints and
clusters), and *start* (the rest: interpreter, imports, plugins). Analysers' cost is the
difference between the two runs of ours. Medians over the repeats are printed, then both
ratios and the analysers' share against the targets (2x with analysers on, 3x off, analysers
at most a quarter), by wall time and by CPU time, and the ratios our scan would have without
its match stage; the machine may be shared, so only figures of one run compare.

``--per-image`` then fingerprints and analyses every file once more in this process, one
thread, and prints the CPU time of each part of a worker's job (read and hash, decode,
matcher's description, preview, each analyser) per image: where the *read+fingerprint* stage goes.

imagededup imports torchvision, whose PyPI wheel is a CUDA build that cannot load beside
the CPU-only torch wheel; its hashing never calls torchvision, so the child stands in a
placeholder for it when the real one fails to import.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STAGES = ("start", "list", "read+fingerprint", "match", "catalog")
TORCHVISION_MODULES: tuple[str, ...] = ("torchvision", "torchvision.models", "torchvision.transforms")
TORCHVISION_MODULES += ("torchvision.models.vision_transformer",)
TOOLS = ("ours (analysers on)", "ours (analysers off)", "imagededup")
TARGET_ON, TARGET_OFF, TARGET_SHARE = 2.0, 3.0, 0.25
PR_SET_CHILD_SUBREAPER = 36  # prctl(2)


class StageClock:
    """Exclusive wall time per stage: a stage's time excludes the stages called inside it."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self._stack: list[list[Any]] = []

    def wrap(self, owner: Any, name: str, stage: str) -> None:
        """Time every call of ``owner.name`` as ``stage``."""
        original: Callable[..., Any] = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            frame = [time.perf_counter(), 0.0]
            self._stack.append(frame)
            try:
                return original(*args, **kwargs)
            finally:
                self._stack.pop()
                elapsed = time.perf_counter() - frame[0]
                self.seconds[stage] += elapsed - frame[1]
                if self._stack:
                    self._stack[-1][1] += elapsed

        setattr(owner, name, timed)


def _adopt_orphans() -> None:
    """Become the reaper of this process's orphaned descendants (Linux), so their CPU time and memory are counted.

    Our scan's workers are children of Python's fork server, which the scan leaves to exit after it:
    without this, neither would be waited for by anyone whose resource usage we read.
    """
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _reap(pid: int) -> tuple[float, float]:
    """Wait for ``pid`` and then every orphan left to us; (CPU seconds, largest resident set in MiB) over them all.

    Each wait's figures include the reaped process's own waited-for children (the workers).
    """
    cpu, peak_kib = 0.0, 0
    _pid, _status, usage = os.wait4(pid, 0)
    while True:
        cpu += usage.ru_utime + usage.ru_stime
        peak_kib = max(peak_kib, usage.ru_maxrss)
        try:
            _pid, _status, usage = os.wait4(-1, 0)
        except ChildProcessError:
            return cpu, peak_kib / 1024


def run_ours(corpus: Path, workers: int, analysers: bool, started: float) -> dict[str, Any]:
    """Run ``dam-dedupe scan`` in this process with stage timers; its figures."""
    from dam_dedupe import clustering, scan
    from dam_dedupe.catalog.sqlite import SqliteCatalog
    from dam_dedupe.cli import main

    clock = StageClock()
    clock.wrap(scan.Scan, "_list", "list")
    clock.wrap(scan.Scan, "_record_listing", "catalog")
    clock.wrap(scan.Scan, "_fingerprint", "read+fingerprint")
    clock.wrap(scan.Scan, "_store", "catalog")
    clock.wrap(scan, "build_clusters", "match")
    clock.wrap(clustering, "build_clusters", "match")
    clock.wrap(SqliteCatalog, "replace_clusters", "catalog")
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "dam-dedupe.toml"
        config.write_text("" if analysers else '[analysis]\ndisabled = ["faces", "rights"]\n')
        args = ["--catalog", f"{tmp}/catalog.db", "--config", str(config), "scan", str(corpus)]
        main([*args, "--workers", str(workers)], standalone_mode=False)
    total = time.perf_counter() - started
    clock.seconds["start"] = total - sum(clock.seconds.values())
    return {"seconds": total, "stages": clock.seconds}


def run_imagededup(corpus: Path, workers: int, started: float) -> dict[str, Any]:
    """Hash the folder with imagededup's PHash and find duplicates; its figures."""
    try:
        import torchvision  # noqa: F401
    except (ImportError, RuntimeError, OSError):
        for name in [m for m in sys.modules if m.startswith("torchvision")]:
            del sys.modules[name]
        from unittest.mock import MagicMock  # here: with compileall, 0.07 s of every child's start at the top

        for name in TORCHVISION_MODULES:
            sys.modules[name] = MagicMock()  # stands in for names imagededup's CNN models use at import
    from imagededup.methods import PHash

    imported = time.perf_counter()
    hasher = PHash(verbose=False)
    encodings = hasher.encode_images(image_dir=str(corpus), num_enc_workers=workers)
    hashed = time.perf_counter()
    duplicates = hasher.find_duplicates(encoding_map=encodings, max_distance_threshold=10)
    done = time.perf_counter()
    stages = {"start": imported - started, "read+fingerprint": hashed - imported, "match": done - hashed}
    return {"seconds": done - started, "stages": stages, "files": len(encodings), "with_copies": len(duplicates)}


def child(tool: str, corpus: Path, workers: int) -> None:
    """Run one tool (in a fresh process) and print its figures as JSON on the last line."""
    started = time.perf_counter()
    if tool == "imagededup":
        found = run_imagededup(corpus, workers, started)
    else:
        found = run_ours(corpus, workers, tool == TOOLS[0], started)
    print(json.dumps(found))


def spawn(tool: str, corpus: Path, workers: int) -> dict[str, Any]:
    """Run one tool in a fresh child process; its figures, with wall time, CPU time and peak memory from outside."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as errors:
        command = [sys.executable, __file__, str(corpus), "--child", tool, "--workers", str(workers)]
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True)
        assert child.stdout is not None
        out = child.stdout.read()
        cpu, peak = _reap(child.pid)
        wall = time.perf_counter() - started
        if not out.strip():
            errors.seek(0)
            raise SystemExit(f"{tool} failed:\n{errors.read()}")
    found: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    found.update(wall=wall, cpu=cpu, peak_mb=peak)
    return found


def main() -> None:
    """Run every tool ``--repeat`` times back to back and print medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child", choices=TOOLS)
    parser.add_argument("--per-image", action="store_true", help="then time each part of a worker's job")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.corpus, args.workers)
        return
    _adopt_orphans()
    _byte_compile()
    runs: dict[str, list[dict[str, Any]]] = {tool: [] for tool in TOOLS}
    for n in range(args.repeat):
        for tool in TOOLS:
            runs[tool].append(spawn(tool, args.corpus, args.workers))
            print(f"repeat {n + 1}: {tool}: {runs[tool][-1]['wall']:.1f} s", file=sys.stderr)
    if args.repeat:
        report(runs, args.corpus, args.workers, args.repeat)
    if args.per_image:
        per_image(args.corpus)


def _byte_compile() -> None:
    """Byte-compile this checkout's modules, as ``pip install .`` does for an installed copy.

    Where ``PYTHONDONTWRITEBYTECODE`` is set (some sandboxes set it), an editable install compiles
    every module again in every process, the fork server's included, which an installed copy never
    does; the peer's modules were compiled when pip installed them.
    """
    import compileall  # here, not at the top: a child would import it at its start for nothing

    root = Path(__file__).resolve().parent.parent
    for folder in ("src", "adapters", "plugins"):
        compileall.compile_dir(root / folder, quiet=1)


def report(runs: dict[str, list[dict[str, Any]]], corpus: Path, workers: int, repeat: int) -> None:
    """Print the medians of ``runs`` by tool, the ratios against the targets and the stages' times."""
    files = sum(1 for p in corpus.rglob("*") if p.is_file())
    print(f"{corpus}: {files} files, {workers} workers, medians of {repeat} runs")
    print(f"{'':22} {'wall s':>7} {'cpu s':>7} {'peak MiB':>9}  " + "  ".join(f"{s:>16}" for s in STAGES))
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for tool, found in runs.items():
        wall[tool] = statistics.median(r["wall"] for r in found)
        cpu[tool] = statistics.median(r["cpu"] for r in found)
        peak = statistics.median(r["peak_mb"] for r in found)
        stages = [statistics.median(r["stages"].get(s, 0.0) for r in found) for s in STAGES]
        cells = "  ".join(f"{s:7.2f} s {s / wall[tool]:5.1%}" if s else f"{'-':>16}" for s in stages)
        print(f"{tool:22} {wall[tool]:7.2f} {cpu[tool]:7.2f} {peak:9.0f}  {cells}")
    for label, figures in (("wall time", wall), ("CPU time", cpu)):
        on, off, peer = (figures[t] for t in TOOLS)
        share = (on - off) / on
        print(
            f"by {label}: imagededup / ours {peer / on:.2f}x with analysers on ({_verdict(peer / on >= TARGET_ON)}"
            f" {TARGET_ON:g}x), {peer / off:.2f}x with them off ({_verdict(peer / off >= TARGET_OFF)} {TARGET_OFF:g}x);"
            f" analysers {share:.1%} of the scan ({on - off:.2f} s of {on:.2f} s;"
            f" {_verdict(share <= TARGET_SHARE)} {TARGET_SHARE:.0%})"
        )
    rest = {t: statistics.median(r["wall"] - r["stages"]["match"] for r in runs[t]) for t in TOOLS[:2]}
    print(
        f"without our match stage: imagededup / ours {wall[TOOLS[2]] / rest[TOOLS[0]]:.2f}x with analysers on,"
        f" {wall[TOOLS[2]] / rest[TOOLS[1]]:.2f}x with them off (by wall time)"
    )


def per_image(corpus: Path) -> None:
    """Fingerprint and analyse every file of ``corpus`` in this process; print each part's CPU time per image."""
    from dam_dedupe import fingerprint
    from dam_dedupe.host import Host
    from dam_dedupe.records import AssetRecord

    parts: dict[str, float] = {}

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                parts[name] = parts.get(name, 0.0) + time.process_time() - started

        return run

    for name in ("decode", "describe", "make_preview"):
        setattr(fingerprint, name, timed(name, getattr(fingerprint, name)))
    analysers = Host().pm.hook.dam_dedupe_analyse_asset.get_hookimpls()
    images = 0
    started = time.process_time()
    for path in sorted(p for p in corpus.rglob("*") if p.is_file()):
        record = AssetRecord(
            source=corpus.as_uri(), key=path.name, uri=path.as_uri(), size=path.stat().st_size, name=path.name
        )
        arguments = {"asset": record, "options": {}}

        def analyse(image: Any, _sha256: str, arguments: dict[str, Any] = arguments) -> None:
            for impl in analysers:
                given = {**arguments, "image": image}
                timed(impl.plugin_name, impl.function)(*(given[name] for name in impl.argnames))

        try:
            with path.open("rb") as stream:
                fingerprint.fingerprint_stream(stream, analyse)
        except Exception:  # a file the scan records as an error: not part of an image's cost
            continue
        images += 1
    total = time.process_time() - started
    print(f"per image, one process, one thread, CPU time over {images} images ({total:.2f} s in all):")
    for name, seconds in [("read, hash and the rest", total - sum(parts.values())), *parts.items()]:
        print(f"  {name:24} {seconds / images * 1000:6.2f} ms  {seconds / total:5.1%}")


def _verdict(met: bool) -> str:
    """How a figure stands against its target, in words."""
    return "meets" if met else "misses"


if __name__ == "__main__":
    main()
