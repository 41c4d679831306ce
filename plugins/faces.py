"""Personal data: flags images that show identifiable people, by detecting faces.

The detector is MediaPipe's BlazeFace short-range model (``models/face_detection_short_range.tflite``,
229 KiB, shipped inside this package: nothing is downloaded), run by LiteRT, Google's
TensorFlow Lite runtime (``ai-edge-litert``). Install it with ``pip install 'dam-dedupe[faces]'``;
without it this analyser does nothing and the scan says so once. It was chosen by measurement
over OpenCV's Haar cascades and dlib's HOG detector, and LiteRT over OpenCV's DNN module
(``benchmarks/faces.py``; the trade-off is in ``docs/report.md``): it finds more faces with no
more false ones, in a sixth of the cascade's time.

It looks at the decode the scan's fingerprint is made from (no second decode), fitted
into the model's 128x128 input with its aspect ratio kept. Faces smaller than about a
tenth of the long side (group photographs, crowds, a person far off in a landscape) are
not found. Options, in ``[analysis.faces]`` of ``dam-dedupe.toml``:

``min_face``
    the smallest face to report, as a fraction of the image's short side (default 0.08);
``min_score``
    the model's confidence (0 to 1) from which a detection counts (default 0.7; higher finds
    fewer false faces and misses more real ones).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from dam_dedupe import hookimpl
from dam_dedupe.analysis import PERSONAL_DATA, Analysis
from dam_dedupe.errors import MissingExtra
from dam_dedupe.records import AssetRecord

if TYPE_CHECKING:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

log = logging.getLogger(__name__)

MODEL = Path(__file__).parent / "models" / "face_detection_short_range.tflite"
DETECTOR_NAME = "blazeface_short_range"
INPUT_SIDE = 128
"""The model's input: a 128x128 RGB picture with values in -1..1."""
ANCHOR_LAYERS = ((16, 2), (8, 6))
"""The model's anchor grid: (cells per side, anchors per cell) for its two output layers (896 anchors)."""
OVERLAP = 0.3
"""Detections overlapping more than this (intersection over union) are one face."""
DEFAULT_MIN_FACE = 0.08
DEFAULT_MIN_SCORE = 0.7

_running = threading.Lock()  # one interpreter per process, and an interpreter runs one picture at a time


def check_available() -> None:
    """Raise :class:`~dam_dedupe.errors.MissingExtra` when LiteRT is not installed."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError as exc:
        raise MissingExtra("faces", "ai-edge-litert") from exc


@cache
def _detector() -> Interpreter | None:
    """The model loaded into LiteRT, once per process; ``None`` without LiteRT."""
    try:
        check_available()
    except MissingExtra as exc:
        log.info("face detection is off, so no image is flagged as personal data: %s", exc)  # the scan said so once
        return None
    from ai_edge_litert.interpreter import Interpreter

    # one thread: the scan runs one worker process per core, and threads within each only contend
    interpreter = Interpreter(model_path=str(MODEL), num_threads=1)
    with _stderr_silenced():  # the runtime prints "INFO: Created TensorFlow Lite XNNPACK delegate" from C++
        interpreter.allocate_tensors()
    return interpreter


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Point this process's standard error (file descriptor 2, where C++ libraries write) at the null device."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@cache
def _anchors() -> np.ndarray:
    """The centre of every anchor, as fractions of the input side, in the model's output order."""
    import numpy as np

    centres = [
        ((x + 0.5) / cells, (y + 0.5) / cells)
        for cells, per_cell in ANCHOR_LAYERS
        for y in range(cells)
        for x in range(cells)
        for _ in range(per_cell)
    ]
    return np.array(centres, dtype=np.float32)


def _model_input(image: Image.Image) -> tuple[np.ndarray, float]:
    """``image`` fitted into the model's input (centred on black), and how many input pixels one of its pixels is."""
    import numpy as np

    scale = INPUT_SIDE / max(image.size)
    width, height = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    fitted = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    canvas = np.zeros((1, INPUT_SIDE, INPUT_SIDE, 3), dtype=np.float32)
    top, left = (INPUT_SIDE - height) // 2, (INPUT_SIDE - width) // 2
    canvas[0, top : top + height, left : left + width] = np.asarray(fitted, dtype=np.float32) / 127.5 - 1.0
    return canvas, scale


def _distinct(boxes: np.ndarray, scores: np.ndarray) -> int:
    """How many of ``boxes`` (x0, y0, x1, y1) remain when each overlapping a better-scored one by more than
    :data:`OVERLAP` is dropped (non-maximum suppression)."""
    import numpy as np

    order = list(np.argsort(-scores))
    kept = 0
    while order:
        best, order = order[0], order[1:]
        kept += 1
        if not order:
            break
        rest = boxes[order]
        corner = np.maximum(rest[:, :2], boxes[best, :2])
        far = np.minimum(rest[:, 2:], boxes[best, 2:])
        common = np.prod(np.clip(far - corner, 0, None), axis=1)
        areas = np.prod(rest[:, 2:] - rest[:, :2], axis=1) + np.prod(boxes[best, 2:] - boxes[best, :2])
        order = [i for i, shared in zip(order, common / (areas - common), strict=True) if shared <= OVERLAP]
    return kept


def count_faces(image: Image.Image, min_face: float = DEFAULT_MIN_FACE, min_score: float = DEFAULT_MIN_SCORE) -> int:
    """How many faces of at least ``min_face`` of the short side the model finds in ``image`` with ``min_score``."""
    interpreter = _detector()
    if interpreter is None:
        return 0
    pixels, scale = _model_input(image)
    with _running:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], pixels)
        interpreter.invoke()
        outputs = {o["name"]: interpreter.get_tensor(o["index"]) for o in interpreter.get_output_details()}
    return faces_in(outputs["classificators"], outputs["regressors"], min(image.size) * scale, min_face, min_score)


def faces_in(logits: np.ndarray, boxes: np.ndarray, short_side: float, min_face: float, min_score: float) -> int:
    """How many distinct faces the model's outputs show (``short_side``: the picture's, in input pixels).

    Apart from :func:`count_faces` so that ``benchmarks/faces.py`` can decode another runtime's outputs alike.
    """
    import numpy as np

    scores = 1.0 / (1.0 + np.exp(-np.clip(logits[0, :, 0], -80.0, 80.0)))
    keep = np.flatnonzero(scores >= min_score)
    centres = _anchors()[keep] * INPUT_SIDE + boxes[0, keep, :2]
    sides = boxes[0, keep, 2:4]
    large = sides.min(axis=1) >= min_face * short_side
    if not large.any():
        return 0
    corners = np.concatenate([centres - sides / 2, centres + sides / 2], axis=1)[large]
    return _distinct(corners, scores[keep][large])


@hookimpl
def dam_dedupe_analyse_asset(asset: AssetRecord, image: Image.Image, options: Mapping[str, Any]) -> Analysis | None:
    """Flag the image as personal data when it shows at least one face."""
    if _detector() is None:
        return None
    settings = options.get("faces", {})
    min_face = float(settings.get("min_face", DEFAULT_MIN_FACE))
    faces = count_faces(image, min_face, float(settings.get("min_score", DEFAULT_MIN_SCORE)))
    if not faces:
        return Analysis(facts={"faces": "0"})
    return Analysis(frozenset([PERSONAL_DATA]), {"faces": str(faces), "detector": DETECTOR_NAME})
