"""Personal data: flags images that show identifiable people, by detecting faces.

The detector is MediaPipe's BlazeFace short-range model (``models/face_detection_short_range.tflite``,
229 KiB, shipped inside this package: nothing is downloaded), run by OpenCV's own DNN
module from the ``opencv-python-headless`` wheel. Install it with
``pip install 'dam-dedupe[faces]'``; without it this analyser does nothing and the scan
says so once. It was chosen by measurement over OpenCV's Haar cascades and dlib's HOG
detector (``benchmarks/faces.py``; the trade-off is in ``docs/report.md``): it finds more
faces with no more false ones, in a fifth of the cascade's time.

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

import logging
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from dam_dedupe import hookimpl
from dam_dedupe.analysis import PERSONAL_DATA, Analysis
from dam_dedupe.errors import MissingExtra
from dam_dedupe.records import AssetRecord

if TYPE_CHECKING:
    import cv2
    import numpy as np

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


def check_available() -> None:
    """Raise :class:`~dam_dedupe.errors.MissingExtra` when OpenCV is not installed."""
    try:
        import cv2  # noqa: F401
    except ImportError as exc:
        raise MissingExtra("faces", "opencv-python-headless") from exc


@cache
def _detector() -> cv2.dnn.Net | None:
    """The model loaded into OpenCV's DNN module, once per process; ``None`` without OpenCV."""
    try:
        check_available()
    except MissingExtra as exc:
        log.warning("face detection is off, so no image is flagged as personal data: %s", exc)
        return None
    import cv2

    cv2.setNumThreads(1)  # the scan runs one worker process per core: threads within each only contend
    return cv2.dnn.readNetFromTFLite(str(MODEL))


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
    """``image`` fitted into the model's input (centred on black), and how many input pixels one of its pixels is.

    OpenCV's area resize, several times faster than Pillow's on these small pictures, is what
    ``benchmarks/faces.py`` measured.
    """
    import cv2
    import numpy as np

    scale = INPUT_SIDE / max(image.size)
    width, height = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    canvas = np.zeros((INPUT_SIDE, INPUT_SIDE, 3), dtype=np.float32)
    top, left = (INPUT_SIDE - height) // 2, (INPUT_SIDE - width) // 2
    canvas[top : top + height, left : left + width] = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA)
    canvas = canvas / 127.5 - 1.0
    return np.ascontiguousarray(canvas.transpose(2, 0, 1)[np.newaxis]), scale


def count_faces(image: Image.Image, min_face: float = DEFAULT_MIN_FACE, min_score: float = DEFAULT_MIN_SCORE) -> int:
    """How many faces of at least ``min_face`` of the short side the model finds in ``image`` with ``min_score``."""
    net = _detector()
    if net is None:
        return 0
    import cv2
    import numpy as np

    blob, scale = _model_input(image)
    net.setInput(blob)
    logits, boxes = net.forward(["classificators", "regressors"])
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits[0, :, 0], -80.0, 80.0)))
    keep = np.flatnonzero(scores >= min_score)
    if not keep.size:
        return 0
    centres = _anchors()[keep] * INPUT_SIDE + boxes[0, keep, :2]
    sides = boxes[0, keep, 2:4]
    large = sides.min(axis=1) >= min_face * min(image.size) * scale
    if not large.any():
        return 0
    rects = np.concatenate([centres - sides / 2, sides], axis=1)[large]
    return len(cv2.dnn.NMSBoxes(rects.tolist(), scores[keep][large].tolist(), min_score, OVERLAP))


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
