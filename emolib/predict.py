"""Predict emotions with a trained model directory (``reports/models/<model>/``).

A model directory holds ``model.keras`` (input (S, S, 1) float32 raw grayscale pixels
0..255, all preprocessing inside the graph, softmax output) and ``model.json`` (model
card: ``model_name``, ``classes`` in output order, ``input_shape``).

    >>> from emolib.predict import load_predictor
    >>> p = load_predictor("reports/models/cnn")
    >>> p.predict("photo.jpg")                 # one FaceResult per face
    >>> p.predict_batch(["a.jpg", "folder/b.png"])   # batched forward passes

Speed: the network runs through a backend (`emolib.backends`): Keras through one cached
``tf.function`` (no ``model.predict``, whose per-call overhead dominates for single images),
or LiteRT for a ``model.tflite`` the card vouches for (the default model shipped with
emolib, ``load_predictor()`` without a folder), which never imports TensorFlow.
`predict_batch` reads and detects per file but runs the network once per `batch_size` faces.
A model whose card has an 'other' head answers emotion ``'other'`` for a face showing none
of its classes (status stays 'ok', the class probabilities are kept).

Bad input never raises out of `predict` / `predict_batch`: every input gives at least one
row, and each row's status is one of (`STATUSES`):

* ``'ok'``                  - a face was classified (emotion, confidence, probabilities set);
* ``'no_face'``             - a face was searched for and none was found;
* ``'blank'``               - the image (or every face crop) that would be classified is
  near-blank: pixel std <= `emolib.images.BLANK_MAX_STD` (4) grey levels at the model's
  input size, the data checks' definition (a white frame, a fully transparent PNG); no
  emotion is given for it;
* ``'unreadable: <reason>'`` - the input cannot be used (missing, broken or looping link,
  folder, pipe, empty, corrupt or truncated, too small, decompression bomb, ...).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import faces as _faces
from . import tta as tta_views
from .images import ImageReadError, is_image_path, near_blank, read_image
from .modelfolder import (  # noqa: F401 - CARD_FILE, MODEL_FILE, ModelDirError re-exported for users
    CARD_FILE,
    MODEL_FILE,
    ModelDirError,
    check_model_matches_card,
    load_model,
    read_card,
    resolve_model_dir,
)

STATUS_OK = "ok"
STATUS_NO_FACE = "no_face"
STATUS_BLANK = "blank"
STATUS_UNREADABLE = "unreadable"  # always followed by ': <reason>'
STATUSES = (STATUS_OK, STATUS_NO_FACE, STATUS_BLANK, STATUS_UNREADABLE)
OTHER = "other"  # the emotion of an 'ok' face that shows none of the model's classes (the 'other' head)
PROGRESS_MIN_ITEMS = 20  # progress bars only for batches longer than this


@dataclass
class FaceResult:
    """One face of one image (or one status row for an image without a usable face).

    face: index of the face in the image, left to right, from 0 (None when there is none).
    box: (x, y, w, h) in pixels of the image read (EXIF-rotated); None for a pass-through
         image used whole (faces='off', or a small face crop under faces='auto').
    status: 'ok', 'no_face', 'blank' or 'unreadable: <reason>' (see the module docstring).
    """

    face: int | None
    box: tuple[int, int, int, int] | None
    emotion: str | None
    confidence: float | None
    probabilities: dict[str, float] = field(default_factory=dict)
    status: str = STATUS_OK
    path: str | None = None
    other: float | None = None  # p_other of the model's 'other' head (None without one); 'other' above its threshold

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    def to_row(self, classes: Sequence[str]) -> dict[str, Any]:
        """A flat dict with the CSV columns (None where not applicable)."""
        x, y, w, h = self.box if self.box is not None else (None, None, None, None)
        row = {
            "path": self.path,
            "face": self.face,
            "x": x,
            "y": y,
            "w": w,
            "h": h,
            "status": self.status,
            "emotion": self.emotion,
            "confidence": self.confidence,
        }
        for c in classes:
            row[f"p_{c}"] = self.probabilities.get(c) if self.probabilities else None
        return row


def csv_columns(classes: Sequence[str]) -> list[str]:
    return ["path", "face", "x", "y", "w", "h", "status", "emotion", "confidence"] + [f"p_{c}" for c in classes]


def _describe(source: Any, index: int | None = None) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    kind = type(source).__name__
    return f"<{kind} #{index}>" if index is not None else f"<{kind}>"


def _unreadable(reason: str, source: Any = None) -> str:
    """'unreadable: <reason>' without the file name that ImageReadError puts first."""
    reason = str(reason).strip() or "unknown error"
    if isinstance(source, (str, os.PathLike)):
        for prefix in (f"{source}: ", f"{Path(source)}: "):
            if reason.startswith(prefix):
                reason = reason[len(prefix) :]
                break
    elif reason.startswith("<") and ">: " in reason:
        reason = reason.split(">: ", 1)[1]
    return f"{STATUS_UNREADABLE}: {' '.join(reason.split())}"


def _dedup_key(p: Path) -> Path:
    """The real path for spotting duplicates; a looping link (resolve() raises) stays itself."""
    try:
        return p.resolve()
    except (OSError, RuntimeError, ValueError):  # RuntimeError: 'Symlink loop' before Python 3.13
        return Path(os.path.abspath(p))


def _is_video_path(path: Path) -> bool:
    from .video import is_video_path  # lazily: emolib.video imports this module

    return is_video_path(path)


def iter_image_paths(
    paths: Iterable[str | os.PathLike], *, videos: bool = False
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Expand files and folders (recursively) into image paths (and video paths with `videos`,
    by extension: `emolib.video.VIDEO_EXTENSIONS`).

    Returns (images, skipped): images sorted per argument (folders walked in sorted
    order, so the result is deterministic) without duplicates; skipped holds
    (path, reason) for missing paths, other names (links) of a file already listed and,
    inside folders, files without an image extension, hidden files, links to folders
    (not followed, so a link loop cannot recurse) and folders that cannot be listed. A file named
    explicitly is kept whatever its extension: reading it will tell whether it is an image. Broken or looping links,
    pipes and the like with an image name are kept too: each gets an 'unreadable: <reason>'
    row from the predictor rather than disappearing.
    """
    found: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    seen: dict[Path, Path] = {}

    def add(p: Path) -> None:
        key = _dedup_key(p)
        if key not in seen:
            seen[key] = p
            found.append(p)
        elif seen[key] != p:  # another name (a link) for a file already listed
            skipped.append((p, f"same file as {seen[key]} (predicted once)"))

    def walk_error(e: OSError) -> None:
        skipped.append((Path(e.filename or "?"), f"cannot list the folder ({e.strerror or e})"))

    for arg in paths:
        p = Path(arg)
        if not os.path.lexists(p):
            skipped.append((p, "not found"))
        elif p.is_dir():
            # followlinks=False: links to folders are listed, never entered (no endless link loops).
            for root, dirs, files in os.walk(p, onerror=walk_error, followlinks=False):
                entered = []
                for d in sorted(dirs):
                    if d.startswith("."):
                        continue
                    if os.path.islink(os.path.join(root, d)):
                        skipped.append((Path(root) / d, "link to a folder (not followed)"))
                    else:
                        entered.append(d)
                dirs[:] = entered
                for name in sorted(files):
                    f = Path(root) / name
                    if name.startswith("."):
                        skipped.append((f, "hidden file"))
                    elif not (is_image_path(f) or (videos and _is_video_path(f))):
                        skipped.append((f, "not an image file (extension)"))
                    else:
                        add(f)
        else:
            add(p)
    return found, skipped


class Predictor:
    """A loaded model: `predict` for one image, `predict_batch` for many."""

    def __init__(
        self,
        model=None,
        classes: Sequence[str] = (),
        *,
        card: dict | None = None,
        model_dir: str | Path | None = None,
        tta: bool = False,
        backend=None,
        other: bool = True,
        other_threshold: float | None = None,
    ):
        """`model`: a Keras model (run through `backends.KerasBackend`), or None with a ready `backend`
        (e.g. `backends.LiteRTBackend`). `other`: use the card's 'other' head when there is one (faces
        showing none of the classes are labelled 'other'); False always picks one of the classes.
        `other_threshold`: answer 'other' from this p_other on instead of the card's threshold (which
        was chosen on validation; the card's other.tradeoff lists stricter ones and their cost)."""
        from . import backends

        if other_threshold is not None and not 0.0 < float(other_threshold) <= 1.0:
            raise ValueError(f"other_threshold must be in (0, 1], got {other_threshold}")
        self.classes: tuple[str, ...] = tuple(classes)
        self.card = dict(card or {})
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.tta = bool(tta)
        head = backends.other_head(self.card) if other else None
        if backend is None:
            if model is None:
                raise ValueError("Predictor needs a Keras model or a backend")
            self.size = check_model_matches_card(model, {"classes": list(self.classes)}, model_dir or "model")
            backend = backends.KerasBackend(model, head)
        else:
            self.size = int(backend.size)
        self._model = model
        self.backend = backend
        # p_other >= threshold -> 'other'; None when the backend gives no p_other or `other` is off
        self.other_threshold: float | None = float(head["threshold"]) if head and backend.has_other else None
        if other_threshold is not None and self.other_threshold is not None:
            self.other_threshold = float(other_threshold)

    @property
    def model(self):
        """The Keras model (Grad-CAM, benchmarks). A LiteRT predictor loads it from its folder on
        first use, which imports TensorFlow."""
        if self._model is None and self.model_dir is not None:
            self._model = load_model(self.model_dir, self.card)
        return self._model

    @property
    def model_name(self) -> str:
        return str(self.card.get("model_name") or (self.model_dir.name if self.model_dir else "model"))

    # -- the network -------------------------------------------------------------
    def predict_scores(
        self, x: np.ndarray, *, tta: bool | None = None, batch_size: int = 64
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities (N, classes), p_other (N,) or None) for face crops at (N, S, S[, 1]), raw pixels 0..255.

        p_other is the 'other' head's probability that a face shows none of the classes (None when the
        model has no head or it is switched off). With TTA both are the mean over `emolib.tta.views`
        (3 scales, each also mirrored: 6 forward passes per face).
        """
        tta = self.tta if tta is None else tta
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 3:
            x = x[..., None]
        if x.shape[1:] != (self.size, self.size, 1):
            raise ValueError(f"expected (N, {self.size}, {self.size}, 1), got {x.shape}")
        out = np.empty((len(x), len(self.classes)), dtype=np.float32)
        other = np.empty(len(x), dtype=np.float32) if self.other_threshold is not None else None
        step = max(1, int(batch_size))
        for i in range(0, len(x), step):
            chunk = x[i : i + step]
            n = len(chunk)
            if tta:  # all views in one forward pass
                probs, oth = self.backend.run(tta_views.views(chunk))
                probs = tta_views.average(probs, n)
                oth = tta_views.average(oth, n) if oth is not None else None
            else:
                probs, oth = self.backend.run(chunk)
            out[i : i + step] = probs
            if other is not None:
                other[i : i + step] = oth
        return out, other

    def predict_arrays(self, x: np.ndarray, *, tta: bool | None = None, batch_size: int = 64) -> np.ndarray:
        """Probabilities (N, classes) for face crops already at (N, S, S[, 1]), raw pixels 0..255.

        With TTA the result is the mean over `emolib.tta.views`. The 'other' head's
        score is left out: see `predict_scores`.
        """
        return self.predict_scores(x, tta=tta, batch_size=batch_size)[0]

    def score_rows(self, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Rows for `face_result`: the probabilities, plus p_other as one more column when there is a head."""
        probs, other = self.predict_scores(x, batch_size=batch_size)
        return probs if other is None else np.concatenate([probs, other[:, None]], axis=1)

    # -- images ------------------------------------------------------------------
    def prepare_faces(
        self,
        source: Any,
        faces: str,
        name: str | None,
        *,
        blank: bool = True,
        detector: str = _faces.DEFAULT_DETECTOR,
        align: bool = True,
    ) -> tuple[list[tuple[Any, np.ndarray]], FaceResult | None]:
        """Read and detect, as `predict` does before the network: ([(box, (S,S) uint8 crop), ...], None),
        or ([], status row) for an unreadable, faceless or blank image. Public for callers that show
        the crops themselves (the playground's Grad-CAM).

        With `blank`, crops that are all near-blank (at the model's input size) give a
        'blank' status row instead of a prediction. `detector` and `align`: see `predict`.
        """
        try:
            gray = read_image(source, mode="L")
            found = _faces.find_faces(gray, faces, detector=detector, align=align)
            crops = [(box, read_image(crop, mode="L", size=self.size)) for box, crop in found]
        except ImageReadError as e:
            return [], FaceResult(None, None, None, None, {}, _unreadable(e, source), name)
        except _faces.FaceDetectorUnavailable:
            raise
        except Exception as e:  # noqa: BLE001 - one bad file must not stop a batch
            return [], FaceResult(None, None, None, None, {}, _unreadable(f"{type(e).__name__}: {e}", source), name)
        if not crops:
            return [], FaceResult(None, None, None, None, {}, STATUS_NO_FACE, name)
        if blank and all(near_blank(c) for _, c in crops):
            return [], FaceResult(None, None, None, None, {}, STATUS_BLANK, name)
        return crops, None

    def face_result(self, probs: np.ndarray, face: int, box, name: str | None) -> FaceResult:
        """A FaceResult from one row of `score_rows` (probabilities [+ p_other]) or of `predict_arrays`."""
        n = len(self.classes)
        other = float(probs[n]) if len(probs) > n else None
        probs = probs[:n]
        k = int(np.argmax(probs))
        if other is not None and self.other_threshold is not None and other >= self.other_threshold:
            emotion, confidence = OTHER, other  # none of the classes; the class probabilities are kept
        else:
            emotion, confidence = self.classes[k], float(probs[k])
        return FaceResult(
            face=face,
            box=tuple(int(v) for v in box) if box is not None else None,
            emotion=emotion,
            confidence=confidence,
            probabilities={c: float(p) for c, p in zip(self.classes, probs)},
            status=STATUS_OK,
            path=name,
            other=other,
        )

    def predict(
        self,
        image: Any,
        faces: str = "auto",
        *,
        detect_blank: bool = True,
        detector: str = _faces.DEFAULT_DETECTOR,
        align: bool = True,
    ) -> list[FaceResult]:
        """One FaceResult per face of `image` (a path, PIL image, bytes or numpy array).

        faces: 'auto' (small square crops used whole, photos searched), 'on' (always
        search) or 'off' (whole image). Without a face the list holds one row with status
        'no_face'; a near-blank image one row 'blank' (unless `detect_blank` is False, which
        classifies it anyway); an unreadable image one row 'unreadable: <reason>'.
        detector: 'blazeface' (default; crops framed like FER2013 from the landmarks, eyes
        levelled unless `align` is False) or 'haar' (box + 20% margin, as before); an
        unknown name raises ValueError listing the choices (`emolib.faces.DETECTORS`).
        """
        _faces.check_face_mode(faces)
        detector = _faces.check_detector(detector)
        name = str(image) if isinstance(image, (str, os.PathLike)) else None
        crops, status = self.prepare_faces(image, faces, name, blank=detect_blank, detector=detector, align=align)
        if status is not None:
            return [status]
        probs = self.score_rows(np.stack([c for _, c in crops]))
        return [self.face_result(p, i, box, name) for i, ((box, _), p) in enumerate(zip(crops, probs))]

    def predict_batch(
        self,
        items: Iterable[Any],
        faces: str = "auto",
        batch_size: int = 64,
        progress: bool = True,
        *,
        detect_blank: bool = True,
        detector: str = _faces.DEFAULT_DETECTOR,
        align: bool = True,
    ) -> list[FaceResult]:
        """FaceResults for many images, in input order, each with `path` set.

        Files are read and searched one by one; the network runs once per `batch_size`
        faces. `progress` shows a tqdm bar (on stderr) for more than 20 items.
        Unreadable files, photos without a face and blank images give status rows
        ('unreadable: <reason>', 'no_face', 'blank') and never abort. `detector` and
        `align` as in `predict`.
        """
        _faces.check_face_mode(faces)
        detector = _faces.check_detector(detector)
        items = list(items)
        batch_size = max(1, int(batch_size))
        rows: list[FaceResult | None] = []
        pending: list[tuple[int, int, Any, str | None, np.ndarray]] = []  # (row, face, box, name, crop)

        def flush() -> None:
            if not pending:
                return
            probs = self.score_rows(np.stack([p[4] for p in pending]), batch_size=batch_size)
            for (row, face, box, name, _), pr in zip(pending, probs):
                rows[row] = self.face_result(pr, face, box, name)
            pending.clear()

        bar = None
        if progress and len(items) > PROGRESS_MIN_ITEMS:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(items), desc="predict", unit="img", leave=False)
        try:
            for i, item in enumerate(items):
                name = _describe(item, i)
                crops, status = self.prepare_faces(
                    item, faces, name, blank=detect_blank, detector=detector, align=align
                )
                if status is not None:
                    rows.append(status)
                for face, (box, crop) in enumerate(crops):
                    rows.append(None)
                    pending.append((len(rows) - 1, face, box, name, crop))
                if len(pending) >= batch_size:
                    flush()
                if bar is not None:
                    bar.update(1)
            flush()
        finally:
            if bar is not None:
                bar.close()
        return rows  # type: ignore[return-value]

    def __repr__(self) -> str:
        return (
            f"Predictor({self.model_name!r}, classes={list(self.classes)}, input={self.size}x{self.size}, "
            f"tta={self.tta})"
        )


def load_predictor(
    model_dir: str | Path | None = None,
    tta: bool = False,
    *,
    backend: str = "auto",
    other: bool = True,
    other_threshold: float | None = None,
) -> Predictor:
    """A Predictor for a model folder (``model.keras`` loaded with safe_mode=True, ``model.json``).

    model_dir: None for the default model shipped with emolib (`backends.default_model_dir()`).
    backend: 'auto' runs the folder's ``model.tflite`` with LiteRT (no TensorFlow import) when the card
    vouches for it (the default model's does) and ai-edge-litert is installed, else Keras; 'keras' or
    'litert' force one. other, other_threshold: the card's 'other' head, if any (see `Predictor`).
    """
    from . import backends

    path = resolve_model_dir(backends.default_model_dir() if model_dir is None else model_dir)
    card = read_card(path)
    which, tflite = backends.choose(backend, path, card)
    common = {"card": card, "model_dir": path, "tta": tta, "other": other, "other_threshold": other_threshold}
    if which == "litert":
        try:
            runner = backends.LiteRTBackend(tflite, len(card["classes"]))
        except backends.BackendError as e:
            raise ModelDirError(str(e)) from None
        return Predictor(None, card["classes"], backend=runner, **common)
    model = load_model(path, card)
    try:
        return Predictor(model, card["classes"], **common)
    except backends.BackendError as e:  # e.g. an 'other' head that belongs to another model
        raise ModelDirError(f"{path}: {e}") from None
