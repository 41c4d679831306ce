"""Time plan, apply and undo of the quarantine (or another) action over a generated library.

    python benchmarks/governance_apply.py --duplicates 1000 --action quarantine

The library (distinct small JPEGs, each with one byte-identical copy in another folder)
is generated fresh under benchmarks/out/governance/. Each phase runs as a user runs it,
``python -m dam_dedupe`` in a child process; the figures are wall-clock seconds and
steps per second, and the check that undo left every file byte-identical.

To compare two versions of the product, run this same script against each (a checkout of
the other version's ``src``/``plugins``/``adapters`` under the same install), back to back.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

HERE = Path(__file__).parent


def generate(root: Path, count: int) -> None:
    """``count`` distinct 96x64 JPEGs in ``originals/`` and a copy of each in ``copies/``."""
    (root / "originals").mkdir(parents=True)
    (root / "copies").mkdir()
    for n in range(count):
        img = Image.new("RGB", (96, 64), (n % 256, (n // 256) % 256, (n * 7) % 256))
        img.putpixel((n % 96, (n // 96) % 64), (255, 255, 255))
        path = root / "originals" / f"IMG_{n:05d}.jpg"
        img.save(path, "JPEG", quality=90)
        (root / "copies" / f"copy of {n:05d}.jpg").write_bytes(path.read_bytes())


def tree_hash(root: Path) -> str:
    """One hash over every file's relative path and bytes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def dam(work: Path, *args: str) -> tuple[float, str]:
    """Run ``dam-dedupe ARGS`` in ``work``; return seconds taken and its output."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "dam_dedupe", *args], cwd=work, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"dam-dedupe {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return time.perf_counter() - started, result.stdout


def main() -> None:
    """Generate, scan, then time plan, apply and undo; print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duplicates", type=int, default=1000)
    parser.add_argument("--action", default="quarantine")
    parser.add_argument("--param", action="append", default=[], help="NAME=VALUE for the action")
    args = parser.parse_args()
    work = HERE / "out" / "governance"
    shutil.rmtree(work, ignore_errors=True)
    generate(work / "lib", args.duplicates)
    (work / "dam-dedupe.toml").write_text(
        f'[matching]\npreset = "exact"\n[policy]\nauthoritative = ["{(work / "lib" / "originals").as_uri()}"]\n',
        encoding="utf-8",
    )
    before = tree_hash(work / "lib")
    dam(work, "scan", "lib", "--workers", "2")
    params = [f"--param={p}" for p in args.param]
    seconds = {"plan": dam(work, "plan", "--action", args.action, *params, "--by", "bench", "-o", "plan.json")[0]}
    dam(work, "approve", "plan.json", "--by", "bench-legal", "--role", "legal")
    steps = len(json.loads((work / "plan.json").read_text(encoding="utf-8"))["steps"])
    seconds["apply"], out = dam(work, "apply", "plan.json", "--by", "bench")
    run_id = next(line for line in out.splitlines() if line.startswith("run ")).split()[1].rstrip(":")
    seconds["undo"] = dam(work, "undo", run_id, "--by", "bench")[0]
    seconds["audit verify"] = dam(work, "audit", "verify")[0]
    figures = {
        "action": args.action,
        "steps": steps,
        **{f"{phase} s": round(value, 2) for phase, value in seconds.items()},
        "apply steps/s": round(steps / seconds["apply"], 1),
        "undo steps/s": round(steps / seconds["undo"], 1),
        "byte-identical after undo": tree_hash(work / "lib") == before,
    }
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
