"""Choose the face detector by measurement: recall, false detections and time per image.

    python benchmarks/faces.py [--repeat 3]

Labelled images, all from packages (nothing is downloaded):

- *with a person*: scikit-image's ``astronaut`` and ``camera`` (the cameraman), each as it is,
  mirrored, at half and a quarter of its size, twice its size, darker (x0.6, x0.35), brighter,
  lower in contrast, grey, re-saved at JPEG quality 30 and turned by 8 degrees; the astronaut
  pasted small (30% and 45% of the short side) into every landscape wallpaper; and the 100
  faces of scikit-image's LFW subset (25x25 crops, enlarged to 160x160 in a frame of background);
- *with no person*: scikit-image's other photographs (a cat, coffee, coins, textures, text,
  the moon, a horse's silhouette, logos, a chessboard), every wallpaper under
  ``/usr/share/backgrounds`` (landscapes and abstract designs), the corpus's logo-like
  designs, each also mirrored and darker, and LFW's 100 non-face crops framed the same way.

Every image is saved as a JPEG and decoded as the scan decodes it (``imaging.decode``, short
side >= 128 unless ``--min-side``), then each detector sees that decode. An image counts as
found when at least one face is reported; recall is over the images with a person, false
detections over the images without. Time is detection alone, median over ``--repeat`` runs,
in milliseconds per image; the machine may be shared, so compare rows of one run only.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE.parent))

from benchmarks.corpus import design  # noqa: E402
from dam_dedupe.imaging import decode  # noqa: E402

WALLPAPERS = Path("/usr/share/backgrounds")
PEOPLE = ("astronaut", "camera")
NO_PEOPLE = (
    "chelsea",
    "coffee",
    "coins",
    "brick",
    "grass",
    "gravel",
    "text",
    "page",
    "moon",
    "horse",
    "logo",
    "colorwheel",
    "checkerboard",
    "rocket",
    "hubble_deep_field",
    "retina",
    "immunohistochemistry",
    "cell",
    "clock",
    "microaneurysms",
)

Labelled = tuple[str, Image.Image, str]
"""(name, picture, ``"large"`` or ``"small"`` face or ``"none"``)."""
Detector = Callable[[Image.Image], int]


def _skimage(name: str) -> Image.Image:
    from skimage import data

    pixels = getattr(data, name)()
    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8) * 255
    return Image.fromarray(pixels.astype(np.uint8)).convert("RGB")


def variants(name: str, img: Image.Image) -> Iterator[tuple[str, Image.Image]]:
    """The image and the variants a user's library holds of it."""
    w, h = img.size
    yield name, img
    yield f"{name}-mirror", ImageOps.mirror(img)
    yield f"{name}-half", img.resize((w // 2, h // 2), Image.Resampling.LANCZOS)
    yield f"{name}-quarter", img.resize((w // 4, h // 4), Image.Resampling.LANCZOS)
    yield f"{name}-double", img.resize((w * 2, h * 2), Image.Resampling.BICUBIC)
    yield f"{name}-dark", ImageEnhance.Brightness(img).enhance(0.6)
    yield f"{name}-darker", ImageEnhance.Brightness(img).enhance(0.35)
    yield f"{name}-bright", ImageEnhance.Brightness(img).enhance(1.3)
    yield f"{name}-flat", ImageEnhance.Contrast(img).enhance(0.6)
    yield f"{name}-grey", img.convert("L").convert("RGB")
    yield f"{name}-q30", Image.open(io.BytesIO(_jpeg(img, 30))).convert("RGB")
    yield f"{name}-turned", img.rotate(8, Image.Resampling.BICUBIC, expand=False, fillcolor=(128, 128, 128))


def wallpapers() -> list[tuple[str, Image.Image]]:
    """Every wallpaper, at most 1600 pixels on its long side."""
    found = []
    for path in sorted(WALLPAPERS.rglob("*")):
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png", ".webp"):
            continue
        img = Image.open(path).convert("RGB")
        img.thumbnail((1600, 1600))
        found.append((path.stem, img))
    return found


def _framed(crop: np.ndarray, side: int = 160) -> Image.Image:
    """A 25x25 LFW crop enlarged to ``side`` in a frame of its own mean grey (faces are seen with a margin)."""
    inner = Image.fromarray((crop * 255).astype(np.uint8)).resize((side, side), Image.Resampling.BICUBIC)
    frame = Image.new("L", (side * 2, side * 2), int(crop.mean() * 255))
    frame.paste(inner, (side // 2, side // 2))
    return frame.convert("RGB")


def labelled() -> list[Labelled]:
    """Every labelled image: (name, picture, the size of the face it shows or ``"none"``)."""
    from skimage import data

    images: list[Labelled] = []
    for name in PEOPLE:
        images += [(n, v, "large") for n, v in variants(name, _skimage(name))]
    astronaut = _skimage("astronaut")
    for name, wall in wallpapers():
        for share in (0.3, 0.45):
            side = int(min(wall.size) * share)
            scene = wall.copy()
            scene.paste(astronaut.resize((side, side), Image.Resampling.LANCZOS), (wall.width // 3, wall.height // 4))
            images.append((f"{name}+astronaut{int(share * 100)}", scene, "small"))
        images.append((name, wall, "none"))
        images.append((f"{name}-mirror", ImageOps.mirror(wall), "none"))
        images.append((f"{name}-dark", ImageEnhance.Brightness(wall).enhance(0.6), "none"))
    for name in NO_PEOPLE:
        img = _skimage(name)
        images += [(name, img, "none"), (f"{name}-mirror", ImageOps.mirror(img), "none")]
        images.append((f"{name}-dark", ImageEnhance.Brightness(img).enhance(0.6), "none"))
    for n, palette in enumerate(("light", "dark", "light", "dark")):
        images.append((f"design-{n}", design(n, f"Campaign {n}", palette).convert("RGB"), "none"))
    lfw = data.lfw_subset()
    images += [(f"lfw-face-{n}", _framed(crop), "large") for n, crop in enumerate(lfw[:100])]
    images += [(f"lfw-other-{n}", _framed(crop), "none") for n, crop in enumerate(lfw[100:])]
    return images


def _jpeg(img: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def blazeface_opencv(min_score: float) -> Detector:
    """The same model, input and decoding as the analyser, run by OpenCV's DNN module instead of LiteRT."""
    import cv2

    from dam_dedupe.plugins import faces

    net = cv2.dnn.readNetFromTFLite(str(faces.MODEL))

    def detect(img: Image.Image) -> int:
        pixels, scale = faces._model_input(img)
        net.setInput(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)))  # OpenCV wants channels first
        logits, boxes = net.forward(["classificators", "regressors"])
        return faces.faces_in(logits, boxes, min(img.size) * scale, 0.0, min_score)

    return detect


def haar(cascade: str, scale: float = 1.1, neighbours: int = 5, min_face: float = 0.08) -> Detector:
    """An OpenCV cascade from the opencv-python-headless wheel (or a path), on the equalised grey picture."""
    import cv2

    path = cascade if "/" in cascade else cv2.data.haarcascades + cascade
    classifier = cv2.CascadeClassifier(path)
    assert not classifier.empty(), path

    def detect(img: Image.Image) -> int:
        grey = cv2.equalizeHist(np.asarray(img.convert("L")))
        side = max(20, int(min(grey.shape) * min_face))
        return len(classifier.detectMultiScale(grey, scaleFactor=scale, minNeighbors=neighbours, minSize=(side, side)))

    return detect


def skimage_lbp(min_face: float = 0.08) -> Detector:
    """scikit-image's own LBP cascade and detector (OpenCV 4 cannot load the file it ships)."""
    from skimage import data
    from skimage.feature import Cascade

    cascade = Cascade(data.lbp_frontal_face_cascade_filename())

    def detect(img: Image.Image) -> int:
        grey = np.asarray(img.convert("L"))
        side = max(24, int(min(grey.shape) * min_face))
        return len(cascade.detect_multi_scale(grey, 1.2, 1, (side, side), grey.shape))

    return detect


def dlib_hog(upsample: int) -> Detector:
    """dlib's HOG + linear SVM frontal face detector (built into the dlib-bin wheel)."""
    import dlib

    detector = dlib.get_frontal_face_detector()
    return lambda img: len(detector(np.asarray(img.convert("L")), upsample))


def analyser() -> Detector:
    """The product's faces analyser as it runs in a scan, with its default options."""
    from dam_dedupe.plugins import faces

    return faces.count_faces


def blazeface(min_score: float) -> Detector:
    """BlazeFace on LiteRT, as the analyser runs it, with its confidence threshold at ``min_score``."""
    from dam_dedupe.plugins import faces

    return lambda img: faces.count_faces(img, min_face=0.0, min_score=min_score)


def detectors() -> dict[str, Detector]:
    """Every candidate that is installed, by name."""
    found: dict[str, Detector] = {"faces analyser": analyser()}
    for score in (0.5, 0.6, 0.7, 0.75):
        found[f"blazeface >={score}"] = blazeface(score)
    try:
        import cv2  # noqa: F401
    except ImportError:
        pass
    else:
        for cascade in ("default", "alt2"):
            found[f"haar-{cascade}"] = haar(f"haarcascade_frontalface_{cascade}.xml")
        found["haar-default x1.2"] = haar("haarcascade_frontalface_default.xml", scale=1.2)
        found["haar-alt2 x1.2"] = haar("haarcascade_frontalface_alt2.xml", scale=1.2)
        found["blazeface >=0.7 opencv"] = blazeface_opencv(0.7)
    try:
        import skimage  # noqa: F401
    except ImportError:
        pass
    else:
        found["lbp (scikit-image)"] = skimage_lbp()
    try:
        import dlib  # noqa: F401
    except ImportError:
        pass
    else:
        found["dlib-hog up0"] = dlib_hog(0)
        found["dlib-hog up1"] = dlib_hog(1)
    return found


def at_side(img: Image.Image, side: int) -> Image.Image:
    """``img`` resized so that its short side is ``side`` (0: as it is)."""
    if not side or min(img.size) == side:
        return img
    scale = side / min(img.size)
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BOX)


def main() -> None:
    """Print one row per detector and detection size: recall by face size, false detections, ms per image."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--min-side", type=int, default=128, help="the decode's smallest short side (scan: 128)")
    parser.add_argument("--sides", default="0,128,160,192", help="short sides to detect at (0: the decode as it is)")
    parser.add_argument("--only", default="", help="detectors to run, comma-separated (default: all installed)")
    parser.add_argument("--misses", action="store_true", help="name the images each detector gets wrong")
    args = parser.parse_args()
    try:
        import cv2
    except ImportError:
        pass
    else:
        cv2.setNumThreads(1)  # as in the scan's workers: one thread each, the cores shared by processes
    decoded = []
    for name, img, face in labelled():
        data = _jpeg(img)
        decoded.append((name, decode(io.BytesIO(data), len(data), args.min_side).image, face))
    total = {kind: sum(face == kind for _, _, face in decoded) for kind in ("large", "small", "none")}
    print(f"{len(decoded)} images ({total}), decoded with short side >= {args.min_side}")
    print(f"{'detector':20} {'side':>5} {'large faces':>14} {'small faces':>14} {'false':>13} {'ms/image':>9}")
    chosen = [d for d in args.only.split(",") if d]
    for label, detect in detectors().items():
        if chosen and label not in chosen:
            continue
        for side in (int(s) for s in args.sides.split(",")):
            images = [(name, at_side(img, side), face) for name, img, face in decoded]
            times, counts = [], []
            for _ in range(args.repeat):
                started = time.process_time()
                counts = [detect(img) for _, img, _ in images]
                times.append(time.process_time() - started)
            hits = [(n, f) for (n, _, f), c in zip(images, counts, strict=True) if c]
            found = {kind: [n for n, f in hits if f == kind] for kind in total}
            ms = statistics.median(times) / len(images) * 1000
            cells = [f"{len(found[k]):>4}/{total[k]} {len(found[k]) / total[k]:5.1%}" for k in total]
            print(f"{label:20} {side or 'as is':>5} {cells[0]:>14} {cells[1]:>14} {cells[2]:>13} {ms:9.1f}")
            if args.misses:
                missed = [n for n, _, f in images if f == "large" and n not in found["large"]]
                print(f"    missed large: {', '.join(missed)}\n    false: {', '.join(found['none'])}")


if __name__ == "__main__":
    main()
