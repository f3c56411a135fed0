"""Datasets: find the images, label and split them, load pixels, weigh classes.

Three layouts are understood:
  * class folders with splits: `DATA_DIR/train/<class>/*`, `DATA_DIR/test/<class>/*`
    (Kaggle FER2013 `msambare/fer2013`, and most user datasets);
  * one folder of classes, `DATA_DIR/<class>/*`, split here into train/test;
  * the original `fer2013.csv` (columns emotion, pixels, Usage).

The central object is an index: a DataFrame with one row per image and columns
`path`, `label`, `split` (`train`/`val`/`test`), `source`. Pixels are loaded later by
`load_images`, once, and cached under `data/interim/`.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import images
from .config import (  # noqa: F401 - HOW_TO_GET_DATA is re-exported
    FER2013_CLASSES,
    HOW_TO_GET_DATA,
    SYNTHETIC_DATA_DIR,
    is_default_data_dir,
    normalise_class_name,
)

# Row order of the `emotion` column in the original Kaggle fer2013.csv.
FER2013_CSV_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER2013_CSV_USAGE = {"Training": "train", "PublicTest": "test", "PrivateTest": "private_test"}
SPLIT_FOLDER_NAMES = {
    "train": "train",
    "training": "train",
    "test": "test",
    "testing": "test",
    "val": "val",
    "valid": "val",
    "validation": "val",
}

# HOW_TO_GET_DATA lives in config (a leaf module) and is re-exported here for its users.


class DataError(ValueError):
    """The data cannot be used as asked; the message says what to do."""


class DataNotFoundError(DataError, FileNotFoundError):
    pass


@dataclass
class DatasetReport:
    """What discovery found besides the usable images (shown in the EDA, never hidden)."""

    data_dir: str
    layout: str
    classes: list[str]
    ignored_classes: dict[str, int] = field(default_factory=dict)  # folder -> files
    skipped_files: list[dict] = field(default_factory=list)  # path, reason
    empty_class_folders: list[str] = field(default_factory=list)
    synthetic: bool = False

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def resolve_data_dir(
    data_dir: str | Path,
    *,
    synthetic_ok: bool = True,
    synthetic_dir: str | Path = SYNTHETIC_DATA_DIR,
    profile=None,
    seed: int = 0,
) -> Path:
    """Return the data folder to use, generating the synthetic set when no data is present.

    An explicitly given DATA_DIR that does not exist is an error (a typo must not
    silently turn into a synthetic run); only the default location falls back.
    """
    data_dir = Path(data_dir)
    if data_dir.exists():
        return data_dir
    if not (synthetic_ok and is_default_data_dir(data_dir)):
        raise DataNotFoundError(f"data folder not found: {data_dir}\n{HOW_TO_GET_DATA}")
    from . import synthetic

    print(
        f"No dataset at {data_dir}: generating a SYNTHETIC face set in {synthetic_dir} so the pipeline can "
        f"run offline.\n{HOW_TO_GET_DATA}"
    )
    n_train = profile.synthetic_train_per_class if profile else 300
    n_test = profile.synthetic_test_per_class if profile else 80
    # Always generate all seven classes, so CLASSES=all works on the same folder.
    return synthetic.make_synthetic_dataset(
        Path(synthetic_dir),
        classes=FER2013_CLASSES,
        train_per_class=n_train,
        test_per_class=n_test,
        seed=seed,
    )


def _list_class_folder(folder: Path, report: DatasetReport) -> list[Path]:
    """Image files under `folder` (links to folders are not followed, as rglob does not).

    Broken or looping links with an image name are kept (loading lists them as unreadable);
    pipes, devices and sockets are skipped here, since reading or hashing one could block.
    """
    files = []
    for p in sorted(folder.rglob("*")):
        if p.is_dir() or p.name.startswith("."):
            continue
        if not images.is_image_path(p):
            report.skipped_files.append({"path": str(p), "reason": "not an image file (extension)"})
        elif os.path.exists(p) and not p.is_file():
            report.skipped_files.append({"path": str(p), "reason": "not a regular file (a pipe, device or socket)"})
        else:
            files.append(p)
    return files


def _scan_classes(root: Path, split: str, classes: tuple[str, ...], report: DatasetReport) -> list[dict]:
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        label = normalise_class_name(folder.name)
        files = _list_class_folder(folder, report)
        if label not in classes:
            report.ignored_classes[f"{split}/{folder.name}"] = len(files)
            continue
        if not files:
            report.empty_class_folders.append(str(folder))
        rows += [{"path": str(p), "label": label, "split": split, "source": "folder"} for p in files]
    return rows


def _load_csv(path: Path, classes: tuple[str, ...], report: DatasetReport) -> pd.DataFrame:
    df = pd.read_csv(path)
    missing = {"emotion", "pixels"} - set(df.columns)
    if missing:
        raise DataError(f"{path}: not a fer2013.csv (missing columns {sorted(missing)}; need emotion, pixels, Usage)")
    usage = df["Usage"] if "Usage" in df.columns else pd.Series(["Training"] * len(df))
    rows = []
    for i, (emotion, u) in enumerate(zip(df["emotion"], usage)):
        try:
            label = FER2013_CSV_LABELS[int(emotion)]
        except (ValueError, IndexError):
            report.skipped_files.append({"path": f"{path}#row{i}", "reason": f"unknown emotion code {emotion!r}"})
            continue
        split = FER2013_CSV_USAGE.get(str(u), "train")
        if label in classes and split in ("train", "test"):
            rows.append({"path": f"{path}#row{i}", "label": label, "split": split, "source": "csv"})
    return pd.DataFrame(rows, columns=["path", "label", "split", "source"])


def available_classes(data_dir: str | Path) -> tuple[str, ...]:
    """Every class name (normalised) that has a folder in the dataset, FER2013 order first."""
    data_dir = Path(data_dir)
    if data_dir.is_file() or (data_dir / "fer2013.csv").is_file() and not (data_dir / "train").is_dir():
        return FER2013_CLASSES
    roots = [p for p in data_dir.iterdir() if p.is_dir() and p.name.lower() in SPLIT_FOLDER_NAMES] or [data_dir]
    names = {
        normalise_class_name(d.name) for r in roots for d in r.iterdir() if d.is_dir() and not d.name.startswith(".")
    }
    return tuple([c for c in FER2013_CLASSES if c in names] + sorted(names - set(FER2013_CLASSES)))


def discover(
    data_dir: str | Path, classes: tuple[str, ...] = FER2013_CLASSES, *, test_fraction: float = 0.2, seed: int = 42
) -> tuple[pd.DataFrame, DatasetReport]:
    """Index a dataset folder (or fer2013.csv) for the chosen classes.

    Raises DataNotFoundError / DataError with what to do when the data is missing,
    a requested class has no images, or nothing usable is found.
    """
    data_dir = Path(data_dir)
    if not data_dir.exists():
        raise DataNotFoundError(f"data folder not found: {data_dir}\n{HOW_TO_GET_DATA}")
    classes = tuple(classes)
    from .synthetic import is_synthetic

    csv = data_dir if data_dir.is_file() else data_dir / "fer2013.csv"
    subdirs = {p.name.lower(): p for p in data_dir.iterdir() if p.is_dir()} if data_dir.is_dir() else {}
    split_dirs = {SPLIT_FOLDER_NAMES[n]: p for n, p in subdirs.items() if n in SPLIT_FOLDER_NAMES}
    report = DatasetReport(
        data_dir=str(data_dir), layout="", classes=list(classes), synthetic=data_dir.is_dir() and is_synthetic(data_dir)
    )

    if "train" in split_dirs:
        report.layout = "split class folders (train/<class>, test/<class>)"
        rows = []
        for split, folder in sorted(split_dirs.items()):
            rows += _scan_classes(folder, split, classes, report)
        frame = pd.DataFrame(rows, columns=["path", "label", "split", "source"])
        if "test" not in split_dirs:
            frame = _carve(frame, "train", "test", test_fraction, seed)
            report.layout += "; no test/ folder, test carved from train"
    elif csv.is_file() and csv.suffix.lower() == ".csv":
        report.layout = "fer2013.csv"
        frame = _load_csv(csv, classes, report)
    elif data_dir.is_dir():
        report.layout = f"one folder of classes, split here ({1 - test_fraction:.0%} train / {test_fraction:.0%} test)"
        frame = pd.DataFrame(
            _scan_classes(data_dir, "train", classes, report), columns=["path", "label", "split", "source"]
        )
        frame = _carve(frame, "train", "test", test_fraction, seed)
    else:
        raise DataError(f"{data_dir}: expected a folder of <class>/ images or a fer2013.csv file\n{HOW_TO_GET_DATA}")

    found = set(frame["label"]) if len(frame) else set()
    absent = [c for c in classes if c not in found]
    if absent:
        have = sorted({k.split("/", 1)[-1] for k in report.ignored_classes} | found)
        raise DataError(
            f"{data_dir}: no images for class(es) {absent}. Classes present: {have or 'none'}. "
            "Check CLASSES (names like anger/Angry are normalised to 'angry'), or the folder layout."
            + (f" Empty class folders: {report.empty_class_folders}" if report.empty_class_folders else "")
        )
    for split in ("train", "test"):
        present = set(frame.loc[frame["split"] == split, "label"])
        lacking = [c for c in classes if c not in present]
        if lacking:
            raise DataError(
                f"{data_dir}: the {split} split has no images for {lacking}; "
                "every class needs images in train and test (see empty folders: "
                f"{report.empty_class_folders})"
            )
    frame = frame.sort_values(["split", "label", "path"], kind="stable").reset_index(drop=True)
    return frame, report


def _carve(frame: pd.DataFrame, from_split: str, to_split: str, fraction: float, seed: int) -> pd.DataFrame:
    """Move a stratified, seeded `fraction` of `from_split` rows to `to_split`."""
    from sklearn.model_selection import train_test_split

    frame = frame.copy()
    src = frame.index[frame["split"] == from_split]
    if len(src) == 0:
        return frame
    counts = frame.loc[src, "label"].value_counts()
    if (counts < 2).any():
        raise DataError(f"class(es) {list(counts[counts < 2].index)} have fewer than 2 images; cannot split them")
    _, moved = train_test_split(
        src.to_numpy(), test_size=fraction, random_state=seed, stratify=frame.loc[src, "label"].to_numpy()
    )
    frame.loc[moved, "split"] = to_split
    return frame


def split_validation(
    frame: pd.DataFrame,
    val_fraction: float = 0.15,
    seed: int = 42,
    exclude_hashes: set[str] | None = None,
    hashes: pd.Series | None = None,
) -> pd.DataFrame:
    """Carve a stratified, seeded validation split from train. Test rows are never touched.

    With `exclude_hashes` (and the per-row `hashes`), train images whose content also
    appears in test are dropped first (the cross-split duplicate option).
    """
    frame = frame.copy()
    if exclude_hashes and hashes is not None:
        drop = (frame["split"] == "train") & hashes.reindex(frame.index).isin(exclude_hashes)
        frame = frame.loc[~drop].reset_index(drop=True)
    if "val" in set(frame["split"]):
        return frame  # the dataset ships its own validation split
    return _carve(frame, "train", "val", val_fraction, seed)


def subsample(frame: pd.DataFrame, split: str, max_per_class: int | None, seed: int = 42) -> pd.DataFrame:
    """Keep at most `max_per_class` rows of `split` per class (seeded); other splits unchanged."""
    if not max_per_class:
        return frame
    part = frame[frame["split"] == split]
    rng = np.random.default_rng(seed)
    keep = [
        rng.choice(idx, size=min(len(idx), max_per_class), replace=False)
        for _, idx in sorted(part.groupby("label").groups.items())
    ]
    drop = part.index.difference(np.concatenate(keep) if keep else [])
    return frame.drop(index=drop)


def class_weights(labels, classes, power: float = 1.0) -> dict[int, float]:
    """Weights inversely proportional to class frequency: (n / (k * n_c)) ** power.

    power 1 is scikit-learn's 'balanced' rule (the seed's); a 20/61/19 split gives 1.67/0.55/1.75.
    power 0.5 tempers it to the square root (FER2013's disgust: 9.4 -> 3.1), power 0 weighs all alike.
    """
    if not 0.0 <= float(power) <= 1.0:
        raise ValueError(f"class weight power must be in [0, 1], got {power}")
    labels = pd.Series(list(labels))
    counts = labels.value_counts()
    n, k = len(labels), len(classes)
    missing = [c for c in classes if counts.get(c, 0) == 0]
    if missing:
        raise DataError(f"cannot weight classes with no training images: {missing}")
    return {i: float((n / (k * counts[c])) ** float(power)) for i, c in enumerate(classes)}


def counts_table(frame: pd.DataFrame, classes) -> pd.DataFrame:
    """Images per class (rows) and split (columns), with totals and shares of train."""
    table = pd.crosstab(frame["label"], frame["split"]).reindex(index=list(classes), fill_value=0)
    table = table[[s for s in ("train", "val", "test", "private_test") if s in table.columns]]
    table["total"] = table.sum(axis=1)
    if "train" in table:
        table["train_share"] = (table["train"] / table["train"].sum()).round(4)
    return table


# ---------------------------------------------------------------- pixels
def _read_csv_pixels(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    out = {}
    for csv_path, group in frame.groupby(frame["path"].str.rsplit("#row", n=1).str[0]):
        rows = group["path"].str.rsplit("#row", n=1).str[1].astype(int)
        pixels = pd.read_csv(csv_path, usecols=["pixels"])["pixels"]
        for path, r in zip(group["path"], rows):
            out[path] = np.asarray(pixels.iloc[r].split(), dtype=np.uint8)
    return out


def _read_one(path: str, size: int, csv_pixels: dict) -> tuple[np.ndarray | None, str | None]:
    if path in csv_pixels:
        flat = csv_pixels[path]
        side = int(round(np.sqrt(flat.size)))
        if side * side != flat.size:
            return None, f"pixels field has {flat.size} values, not a square image"
        return images.read_image(flat.reshape(side, side), size=size), None
    try:
        return images.read_image(path, size=size), None
    except images.ImageReadError as e:
        return None, str(e)


def _cache_key(frame: pd.DataFrame, size: int) -> str:
    h = hashlib.sha256(f"v1|{size}".encode())
    for p in frame["path"]:
        base = p.split("#row")[0]
        try:
            st = os.stat(base)
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except FileNotFoundError:
            h.update(f"{p}|missing\n".encode())
    return h.hexdigest()[:20]


def load_images(
    frame: pd.DataFrame,
    size: int = 48,
    *,
    cache_dir: str | Path | None = "data/interim",
    progress: bool = True,
    workers: int = 4,
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Decode every image of the index as grayscale uint8 (N, size, size).

    Returns (pixels, ok_mask, problems): unreadable files are not fatal, they get a
    row of zeros, ok_mask False and an entry in `problems` (path, reason), so callers
    drop them and the EDA lists them. Results are cached in `cache_dir` (npz).
    """
    from tqdm.auto import tqdm

    cache_file = None
    if cache_dir is not None and len(frame):
        cache_file = Path(cache_dir) / f"pixels-{_cache_key(frame, size)}.npz"
        if cache_file.exists():
            with np.load(cache_file, allow_pickle=False) as z:
                problems = [{"path": p, "reason": r} for p, r in zip(z["bad_paths"], z["bad_reasons"])]
                return z["pixels"], z["ok"], problems
    csv_pixels = _read_csv_pixels(frame[frame["source"] == "csv"]) if (frame["source"] == "csv").any() else {}
    paths = frame["path"].tolist()
    pixels = np.zeros((len(paths), size, size), dtype=np.uint8)
    ok = np.zeros(len(paths), dtype=bool)
    problems: list[dict] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(lambda p: _read_one(p, size, csv_pixels), paths, chunksize=64)
        for i, (arr, err) in enumerate(
            tqdm(
                results, total=len(paths), desc=f"loading images ({size}x{size})", disable=not progress, mininterval=1.0
            )
        ):
            if arr is None:
                problems.append({"path": paths[i], "reason": err})
            else:
                pixels[i] = arr
                ok[i] = True
    if cache_file is not None:
        from .runinfo import atomic_path

        with atomic_path(cache_file, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(
                    fh,
                    pixels=pixels,
                    ok=ok,
                    bad_paths=np.array([p["path"] for p in problems], dtype=str),
                    bad_reasons=np.array([p["reason"] for p in problems], dtype=str),
                )
    return pixels, ok, problems


def file_md5(path: str) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def content_hashes(frame: pd.DataFrame, csv_pixels: dict | None = None) -> pd.Series:
    """MD5 of each file's bytes (of the pixel string for CSV rows), indexed like `frame`."""
    out = []
    for p in frame["path"]:
        if "#row" in p and not os.path.exists(p):
            csv_pixels = csv_pixels if csv_pixels is not None else _read_csv_pixels(frame[frame["source"] == "csv"])
            out.append(hashlib.md5(csv_pixels[p].tobytes(), usedforsecurity=False).hexdigest())
        else:
            try:
                out.append(file_md5(p))
            except OSError:
                out.append("")
    return pd.Series(out, index=frame.index, name="md5")


def fingerprint(frame: pd.DataFrame, hashes: pd.Series) -> str:
    """A short hash naming exactly which bytes, labels and splits a run used."""
    h = hashlib.sha256()
    for split, label, md5 in sorted(zip(frame["split"], frame["label"], hashes.reindex(frame.index))):
        h.update(f"{split}|{label}|{md5}\n".encode())
    return h.hexdigest()[:16]


@dataclass
class PreparedData:
    """The index after splitting, the pixels, and everything a notebook reports about them."""

    frame: pd.DataFrame  # path, label, split, source, md5, y (class index)
    pixels: np.ndarray  # (N, S, S) uint8, aligned with frame
    classes: tuple[str, ...]
    report: DatasetReport
    problems: list[dict]
    fingerprint: str
    synthetic: bool
    # Auxiliary classes (Profile.aux_classes): training faces of the data's other classes, labelled
    # len(classes).. after the task's; validation and test hold the task's classes only.
    aux_classes: tuple[str, ...] = ()
    aux_fingerprint: str = ""  # which auxiliary bytes and labels were added ('' without them)
    aux_excluded: int = 0  # auxiliary faces dropped because their bytes are also a task test image

    @property
    def train_classes(self) -> tuple[str, ...]:
        """The classes the network is trained on: the task's, then the auxiliary ones."""
        return tuple(self.classes) + tuple(self.aux_classes)

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        mask = (self.frame["split"] == name).to_numpy()
        return self.pixels[mask], self.frame.loc[mask, "y"].to_numpy(dtype=np.int32)

    def paths(self, name: str) -> list[str]:
        return self.frame.loc[self.frame["split"] == name, "path"].tolist()

    def class_weights(self, power: float = 1.0) -> dict[int, float]:
        """Training-split class weights over train_classes (see `class_weights`)."""
        return class_weights(self.frame.loc[self.frame["split"] == "train", "label"], self.train_classes, power)


def other_classes(data_dir: str | Path, classes) -> tuple[str, ...]:
    """The data's classes outside `classes` (FER2013 order): auxiliary or pretraining classes."""
    return tuple(c for c in available_classes(data_dir) if c not in tuple(classes))


def train_faces_of(
    data_dir: str | Path, classes, *, exclude_hashes: set[str] = frozenset(), seed: int = 42
) -> tuple[pd.DataFrame, int]:
    """The training-split index of `classes` with an md5 column; faces whose bytes are in `exclude_hashes`
    (a task's test images: FER2013 has byte-identical copies under other labels) are dropped.

    Returns (frame, number dropped). Test images of these classes are never used.
    """
    frame, _ = discover(data_dir, tuple(classes), seed=seed)
    frame = frame[frame["split"] == "train"].reset_index(drop=True)
    frame["md5"] = content_hashes(frame)
    dropped = frame["md5"].isin(set(exclude_hashes))
    return frame.loc[~dropped].reset_index(drop=True), int(dropped.sum())


def prepare(
    cfg,
    *,
    size: int | None = None,
    progress: bool = True,
    data_dir: str | Path | None = None,
    aux_classes: bool | None = None,
) -> PreparedData:
    """Resolve, index, split (train/val/test), subsample per profile and load pixels for a RunConfig.

    aux_classes (default: the profile's `aux_classes`): add the training faces of every other class
    of the data as auxiliary training classes. The task's splits, validation and test are exactly
    those of a run without them (and so is `fingerprint`); see PreparedData.aux_classes.
    """
    data_dir = resolve_data_dir(data_dir or cfg.data_dir, profile=cfg.profile, seed=cfg.seed)
    frame, report = discover(data_dir, cfg.classes, seed=cfg.seed)
    frame = frame[frame["split"].isin(["train", "val", "test"])].reset_index(drop=True)
    hashes = content_hashes(frame)
    exclude = None
    if cfg.drop_cross_split_duplicates:
        exclude = set(hashes[frame["split"] == "test"])
    frame["md5"] = hashes
    test_hashes = set(hashes[frame["split"] == "test"])  # before any subsampling: every task test image
    frame = split_validation(frame, cfg.val_fraction, cfg.seed, exclude_hashes=exclude, hashes=frame["md5"])
    fp = fingerprint(frame, frame["md5"])
    frame = subsample(frame, "train", cfg.profile.max_train_per_class, cfg.seed)
    frame = subsample(frame, "val", cfg.profile.max_val_per_class, cfg.seed)
    frame = subsample(frame, "test", cfg.profile.max_test_per_class, cfg.seed).reset_index(drop=True)
    aux, aux_fp, aux_excluded = (), "", 0
    if cfg.profile.aux_classes if aux_classes is None else aux_classes:
        aux = other_classes(data_dir, cfg.classes)
        if not aux:
            import warnings

            warnings.warn(
                f"aux_classes: every class of {data_dir} is in the task ({', '.join(cfg.classes)}); "
                "there is no auxiliary class to add, training on the task's classes only",
                stacklevel=2,
            )
        else:
            extra, aux_excluded = train_faces_of(data_dir, aux, exclude_hashes=test_hashes, seed=cfg.seed)
            aux_fp = fingerprint(extra, extra["md5"])
            extra = subsample(extra, "train", cfg.profile.max_train_per_class, cfg.seed)
            frame = pd.concat([frame, extra], ignore_index=True)
    pixels, ok, problems = load_images(frame, size or cfg.profile.cnn_image_size, progress=progress)
    frame, pixels = frame[ok].reset_index(drop=True), pixels[ok]
    frame["y"] = frame["label"].map({c: i for i, c in enumerate(tuple(cfg.classes) + aux)}).astype(np.int32)
    return PreparedData(
        frame=frame,
        pixels=pixels,
        classes=tuple(cfg.classes),
        report=report,
        problems=problems,
        fingerprint=fp,
        synthetic=report.synthetic,
        aux_classes=aux,
        aux_fingerprint=aux_fp,
        aux_excluded=aux_excluded,
    )


def original_sizes(frame: pd.DataFrame, max_items: int = 5000, seed: int = 0) -> pd.DataFrame:
    """Width, height and PIL mode of (a sample of) the files, read from headers only."""
    from PIL import Image

    sample = frame.sample(n=min(len(frame), max_items), random_state=seed) if len(frame) > max_items else frame
    rows = []
    for p in sample["path"]:
        if "#row" in p and not os.path.exists(p):
            rows.append((48, 48, "L"))
            continue
        try:
            with Image.open(p) as im:
                rows.append((im.width, im.height, im.mode))
        except Exception:
            continue
    return pd.DataFrame(rows, columns=["width", "height", "mode"])
