"""Personal data: flags images that show identifiable people, by detecting faces.

The detector is OpenCV's Haar cascade for frontal faces
(``haarcascade_frontalface_alt2.xml``), which ships inside the
``opencv-python-headless`` wheel: nothing is downloaded. Install it with
``pip install 'dam-dedupe[faces]'``; without it this analyser does nothing and the
scan says so once. It was chosen by measurement (``benchmarks/faces.py``; the trade-off
is in ``docs/report.md``).

It looks at the decode the scan's fingerprint is made from (no second decode), resized
so that its short side is :data:`DETECTION_SIDE` pixels: the cascade's cost grows with
the pixels it scans, and that size is the smallest at which it still finds faces of
``min_face`` of the short side. Smaller faces (group photographs, crowds, a person far
off in a landscape) are not found. Options, in ``[analysis.faces]`` of ``dam-dedupe.toml``:

``min_face``
    the smallest face to report, as a fraction of the image's short side (default 0.12);
``min_neighbors``
    how many overlapping detections confirm a face (default 5; higher finds fewer false faces).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from PIL import Image

from dam_dedupe import hookimpl
from dam_dedupe.analysis import PERSONAL_DATA, Analysis
from dam_dedupe.errors import MissingExtra
from dam_dedupe.records import AssetRecord

if TYPE_CHECKING:
    import cv2

log = logging.getLogger(__name__)

CASCADE = "haarcascade_frontalface_alt2.xml"
DETECTION_SIDE = 160
"""The short side, in pixels, the detector sees: the cascade's 20-pixel window then finds faces
of an eighth of the short side and more."""
SCALE_STEP = 1.1
"""How much larger each face size tried is than the last (1.2 is 40% faster but finds a sixth fewer faces)."""


def check_available() -> None:
    """Raise :class:`~dam_dedupe.errors.MissingExtra` when OpenCV is not installed."""
    try:
        import cv2  # noqa: F401
    except ImportError as exc:
        raise MissingExtra("faces", "opencv-python-headless") from exc


@cache
def _detector() -> cv2.CascadeClassifier | None:
    """The cascade from the installed OpenCV package, loaded once per process; ``None`` without OpenCV."""
    try:
        check_available()
    except MissingExtra as exc:
        log.warning("face detection is off, so no image is flagged as personal data: %s", exc)
        return None
    import cv2

    cv2.setNumThreads(1)  # the scan runs one worker process per core: threads within each only contend
    classifier = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE)  # type: ignore[attr-defined]
    if classifier.empty():
        raise RuntimeError(f"OpenCV {cv2.__version__} has no usable {CASCADE}; install opencv-python-headless<5")
    return classifier


def count_faces(image: Image.Image, min_face: float = 0.12, min_neighbors: int = 5) -> int:
    """How many frontal faces of at least ``min_face`` of the short side the cascade finds in ``image``."""
    detector = _detector()
    if detector is None:
        return 0
    import cv2
    import numpy as np

    grey = image.convert("L")
    scale = DETECTION_SIDE / min(grey.size)
    size = (max(1, round(grey.width * scale)), max(1, round(grey.height * scale)))
    grey = grey.resize(size, Image.Resampling.BOX)  # as benchmarks/faces.py measured it
    pixels = cv2.equalizeHist(np.asarray(grey))
    side = max(20, int(DETECTION_SIDE * min_face))
    faces = detector.detectMultiScale(pixels, scaleFactor=SCALE_STEP, minNeighbors=min_neighbors, minSize=(side, side))
    return len(faces)


@hookimpl
def dam_dedupe_analyse_asset(asset: AssetRecord, image: Image.Image, options: Mapping[str, Any]) -> Analysis | None:
    """Flag the image as personal data when it shows at least one face."""
    if _detector() is None:
        return None
    settings = options.get("faces", {})
    faces = count_faces(image, float(settings.get("min_face", 0.12)), int(settings.get("min_neighbors", 5)))
    if not faces:
        return Analysis(facts={"faces": "0"})
    return Analysis(frozenset([PERSONAL_DATA]), {"faces": str(faces), "detector": CASCADE.removesuffix(".xml")})
