"""Score the matcher and imagededup on the labelled corpus, side by side.

Prints pairwise precision, recall and F1 per variant kind, the false-positive rate on
look-alikes, fingerprinting wall time and peak memory for: dam-dedupe (each preset), the
bare read-and-decode at the reduced size that dam-dedupe uses, and imagededup's PHash at
each Hamming threshold (its best one marked).

Run: ``python benchmarks/corpus.py benchmarks/out/corpus``, then
``python benchmarks/accuracy.py benchmarks/out/corpus [--workers 2]``.
``--pair-rate`` prints only the cost of the pair decision: ``judge`` on every pair the index
nominates (``balanced``), in pairs a second on one core.
Each tool runs in a child process of its own, so its peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dam_dedupe.records import Fingerprint

NEAR_LOOKALIKE_KINDS = ("burst", "stereo", "overlap", "template-text", "theme", "tone-version")
IMAGEDEDUP_SKIPS = (".heic",)
"""Files imagededup does not decode (it reads no HEIC): left out of the like-for-like speed comparison."""
IMAGEDEDUP_THRESHOLDS = range(0, 17, 2)


def _fingerprint(path: str) -> object:
    """Fingerprint one file (in a worker)."""
    from dam_dedupe.fingerprint import fingerprint_stream

    with open(path, "rb") as fh:
        return fingerprint_stream(fh)


def _decode_only(path: str) -> tuple[int, int]:
    """Read and decode one file at the reduced size, nothing more (in a worker)."""
    from dam_dedupe.imaging import decode

    with open(path, "rb") as fh:
        data = fh.read()
    import io

    decoded = decode(io.BytesIO(data), len(data))
    return decoded.image.size


def _peak_mb() -> float:
    """Peak resident memory of this process and its finished children, in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024


def run_child(tool: str, corpus: Path, workers: int) -> dict[str, Any]:
    """Run one tool in this process (called in a child): timings, memory and its raw output."""
    labels = json.loads((corpus / "labels.json").read_text())
    paths = [str(corpus / f["file"]) for f in labels["files"]]
    if tool == "ours-common":
        paths = [p for p in paths if not p.lower().endswith(IMAGEDEDUP_SKIPS)]
    started = time.perf_counter()
    if tool in ("ours", "ours-common", "decode"):
        job = _decode_only if tool == "decode" else _fingerprint
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(job, paths, chunksize=8))
        elapsed = time.perf_counter() - started
        output: object = (
            dict(zip([f["file"] for f in labels["files"]], results, strict=True)) if tool == "ours" else None
        )
    else:
        from imagededup.methods import PHash

        hasher = PHash(verbose=False)
        encodings = hasher.encode_images(image_dir=str(corpus), num_enc_workers=workers)
        elapsed = time.perf_counter() - started
        output = {
            t: hasher.find_duplicates(encoding_map=encodings, max_distance_threshold=t) for t in IMAGEDEDUP_THRESHOLDS
        }
    return {"tool": tool, "seconds": elapsed, "peak_mb": _peak_mb(), "files": len(paths), "output": output}


def spawn(tool: str, corpus: Path, workers: int) -> dict[str, Any]:
    """Run one tool in a fresh child process and return what it measured."""
    done = subprocess.run(
        [sys.executable, __file__, str(corpus), "--child", tool, "--workers", str(workers)],
        check=True,
        capture_output=True,
    )
    return pickle.loads(done.stdout)  # noqa: S301 - our own child's output


def truth(labels: dict[str, list[dict[str, object]]]) -> tuple[set[frozenset[str]], dict[frozenset[str], str]]:
    """(every pair of files that are copies, the kind of each original-variant and look-alike pair)."""
    by_group: dict[str, list[str]] = defaultdict(list)
    original: dict[str, str] = {}
    for f in labels["files"]:
        by_group[str(f["group"])].append(str(f["file"]))
        if f["kind"] in ("original", "design"):
            original[str(f["group"])] = str(f["file"])
    positives = {frozenset(p) for files in by_group.values() for p in combinations(files, 2)}
    kind_of: dict[frozenset[str], str] = {}
    for f in labels["files"]:
        if f["negative_of"]:
            kind_of[frozenset((str(f["file"]), str(f["negative_of"])))] = str(f["kind"])
        elif f["kind"] not in ("original", "design", "overlap-a"):
            kind_of[frozenset((str(f["file"]), original[str(f["group"])]))] = str(f["kind"])
        if f.get("theme_of"):
            kind_of[frozenset((str(f["file"]), str(f["theme_of"])))] = "theme"
        if f.get("tone_version_of"):
            kind_of[frozenset((str(f["file"]), str(f["tone_version_of"])))] = "tone-version"
    return positives, kind_of


def score(predicted: set[frozenset[str]], positives: set[frozenset[str]], kind_of: dict[frozenset[str], str]) -> dict:
    """Overall precision/recall/F1, recall per kind, and grouped look-alikes."""
    hits = len(predicted & positives)
    precision = hits / len(predicted) if predicted else 1.0
    recall = hits / len(positives) if positives else 1.0
    per_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for pair, kind in kind_of.items():
        per_kind[kind][0] += pair in predicted
        per_kind[kind][1] += 1
    lookalike = [pair for pair, kind in kind_of.items() if kind in NEAR_LOOKALIKE_KINDS]
    grouped = [sorted(pair) for pair in lookalike if pair in predicted]
    return {
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "per_kind": {k: v[0] / v[1] for k, v in per_kind.items()},
        "counts": {k: v[1] for k, v in per_kind.items()},
        "lookalikes_grouped": grouped,
        "lookalike_fp_rate": len(grouped) / len(lookalike) if lookalike else 0.0,
        "false_pairs": len(predicted - positives),
    }


def our_pairs(fingerprints: dict[str, Fingerprint], preset: str) -> tuple[set[frozenset[str]], float, dict[str, str]]:
    """Pairs dam-dedupe groups under ``preset``, the grouping time, and each member's match kind."""
    from dam_dedupe.matcher import PRESETS, compare, find_groups

    names = list(fingerprints)
    fps = [fingerprints[n] for n in names]
    started = time.perf_counter()
    groups = find_groups(fps, PRESETS[preset])
    elapsed = time.perf_counter() - started
    pairs = {frozenset((names[a], names[b])) for g in groups for a, b in combinations(g, 2)}
    kinds: dict[str, str] = {}
    for g in groups:
        for member in g[1:]:
            result = compare(fps[g[0]], fps[member], PRESETS[preset])
            kinds[f"{names[g[0]]} -> {names[member]}"] = result.match if result else "NONE"
    return pairs, elapsed, kinds


def pair_rate(fingerprints: dict[str, Fingerprint], preset: str) -> tuple[int, float]:
    """(candidate pairs, CPU seconds) for :func:`~dam_dedupe.matcher.compare.judge` on every pair
    the index nominates under ``preset``: the cost of the pair decision alone. CPU time of this
    process, not wall time, so that other load on a shared machine does not count."""
    import numpy as np

    from dam_dedupe.matcher import PRESETS
    from dam_dedupe.matcher.compare import comparable, judge
    from dam_dedupe.matcher.neighbours import CODE_FAMILIES, candidate_pairs

    settings = PRESETS[preset]
    fps = [fp for fp in fingerprints.values() if comparable(fp)]
    codes = {f: np.array([int(fp.perceptual[f], 16) for fp in fps], dtype=np.uint64) for f in CODE_FAMILIES}
    candidates = candidate_pairs(codes, settings)
    started = time.process_time()
    for i, j, symmetry in candidates:
        judge(fps[i], fps[j], symmetry, settings)
    return len(candidates), time.process_time() - started


def imagededup_pairs(duplicates: dict[str, list[str]]) -> set[frozenset[str]]:
    """imagededup's duplicate lists as a set of pairs."""
    return {frozenset((a, b)) for a, found in duplicates.items() for b in found if a != b}


def print_table(rows: Iterable[tuple[str, dict]], kinds: list[str]) -> None:
    """Recall per kind, one column per scored configuration."""
    rows = list(rows)
    print(f"{'kind':18s} {'n':>4s} " + " ".join(f"{name:>16s}" for name, _ in rows))
    for kind in kinds:
        n = rows[0][1]["counts"].get(kind, 0)
        cells = " ".join(f"{r['per_kind'].get(kind, float('nan')):16.3f}" for _, r in rows)
        print(f"{kind:18s} {n:4d} {cells}")
    for metric in ("precision", "recall", "f1", "lookalike_fp_rate", "false_pairs"):
        print(f"{metric:23s} " + " ".join(f"{float(r[metric]):16.3f}" for _, r in rows))


def main() -> None:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child", choices=("ours", "ours-common", "decode", "imagededup"))
    parser.add_argument("--no-imagededup", action="store_true")
    parser.add_argument("--pair-rate", action="store_true", help="time the pair decision only")
    parser.add_argument("--presets", default="strict,balanced,loose", help="comma-separated, balanced among them")
    args = parser.parse_args()
    if args.child:
        sys.stdout.buffer.write(pickle.dumps(run_child(args.child, args.corpus, args.workers)))
        return
    if args.pair_rate:
        count, seconds = pair_rate(spawn("ours", args.corpus, args.workers)["output"], "balanced")
        print(f"judge (balanced): {count} candidate pairs in {seconds:.2f} s of CPU, {count / seconds:.0f} pairs/s")
        return
    labels = json.loads((args.corpus / "labels.json").read_text())
    positives, kind_of = truth(labels)
    from corpus import LOOKALIKE_KINDS, NEAR_KINDS, TRANSFORMED_KINDS

    kinds = [k for k in (*NEAR_KINDS, *TRANSFORMED_KINDS, *LOOKALIKE_KINDS) if k in set(kind_of.values())]
    ours = spawn("ours", args.corpus, args.workers)
    decode = spawn("decode", args.corpus, args.workers)
    rows = []
    timing = []
    presets = args.presets.split(",")
    for preset in presets:
        pairs, grouping_s, match_kinds = our_pairs(ours["output"], preset)
        rows.append((f"dd-{preset}", score(pairs, positives, kind_of)))
        timing.append((preset, grouping_s))
        if preset == "balanced":
            balanced_kinds = match_kinds
    if not args.no_imagededup:
        dedup = spawn("imagededup", args.corpus, args.workers)
        common = spawn("ours-common", args.corpus, args.workers)
        scored = {t: score(imagededup_pairs(d), positives, kind_of) for t, d in dedup["output"].items()}
        best = max(scored, key=lambda t: scored[t]["f1"])
        rows.append((f"imagededup-t{best}*", scored[best]))
        rows.append(("imagededup-t10", scored[10]))
    print_table(rows, kinds)
    print()
    n = ours["files"]
    print(f"files: {n}, workers: {args.workers}")
    print(
        f"dam-dedupe fingerprint: {ours['seconds']:.2f} s ({n / ours['seconds']:.1f} files/s), "
        f"peak {ours['peak_mb']:.0f} MiB"
    )
    print(
        f"read+decode only:       {decode['seconds']:.2f} s ({n / decode['seconds']:.1f} files/s), "
        f"peak {decode['peak_mb']:.0f} MiB; fingerprint/decode = {ours['seconds'] / decode['seconds']:.2f}"
    )
    for preset, seconds in timing:
        print(f"dam-dedupe find_groups ({preset}): {seconds:.2f} s")
    if not args.no_imagededup:
        print(
            f"imagededup PHash encode: {dedup['seconds']:.2f} s, peak {dedup['peak_mb']:.0f} MiB; "
            f"whole corpus: dam-dedupe is {dedup['seconds'] / ours['seconds']:.1f}x faster "
            "(and decodes the HEIC files imagededup skips)"
        )
        print(
            f"on the {common['files']} files both tools decode (imagededup reads no HEIC): dam-dedupe "
            f"{common['seconds']:.2f} s ({common['files'] / common['seconds']:.1f} files/s), "
            f"{dedup['seconds'] / common['seconds']:.1f}x imagededup's throughput"
        )
        print("imagededup F1 by threshold: " + ", ".join(f"t{t}={s['f1']:.3f}" for t, s in scored.items()))
    transformed = {k: v for k, v in balanced_kinds.items() if any(t in k for t in TRANSFORMED_KINDS)}
    right = sum(v == "transformed" for v in transformed.values())
    print(f"balanced: {right}/{len(transformed)} grouped rotations/mirrors reported as 'transformed'")
    for pair in rows[presets.index("balanced")][1]["lookalikes_grouped"]:
        print("balanced grouped look-alike:", " ~ ".join(pair))


if __name__ == "__main__":
    main()
