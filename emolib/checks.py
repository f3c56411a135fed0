"""Data checks that report, never hide: duplicates, label conflicts, blank and unreadable images.

FER2013 is known to hold byte-identical duplicates (some across train and test),
near-identical re-crops, and near-blank images. `run_checks` finds them; the EDA
shows them and `make all` writes them to `reports/data_checks.json`.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd

from .images import BLANK_MAX_STD, near_blank  # one near-blank definition, shared with prediction

NEAR_DUPLICATE_MAX_BITS = 4  # of 64 perceptual-hash bits
MAX_EXAMPLES = 12


def perceptual_hashes(pixels: np.ndarray) -> np.ndarray:
    """64-bit DCT perceptual hash (imagehash.phash) of each (H, W) uint8 image, as uint64."""
    import imagehash
    from PIL import Image

    out = np.empty(len(pixels), dtype=np.uint64)
    for i, img in enumerate(pixels):
        bits = imagehash.phash(Image.fromarray(img)).hash.ravel()
        out[i] = np.packbits(bits).view(">u8")[0]
    return out


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)  # numpy < 2.0
    return table[x.view(np.uint8).reshape(*x.shape, 8)].sum(-1)


def near_duplicate_pairs(hashes: np.ndarray, max_bits: int = NEAR_DUPLICATE_MAX_BITS, block: int = 2048) -> np.ndarray:
    """All index pairs (i < j) whose hashes differ in at most `max_bits` bits, shape (P, 2)."""
    pairs = []
    n = len(hashes)
    for start in range(0, n, block):
        rows = hashes[start : start + block]
        dist = _popcount(rows[:, None] ^ hashes[None, start:])
        i, j = np.nonzero(dist <= max_bits)
        keep = j > i  # j is offset by `start`, i by `start` too: compare within the block frame
        pairs.append(np.stack([i[keep] + start, j[keep] + start], axis=1))
    return np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=np.int64)


def _groups_from_pairs(n: int, pairs: np.ndarray) -> list[list[int]]:
    parent = np.arange(n)

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups = defaultdict(list)
    for i in np.unique(pairs) if len(pairs) else []:
        groups[find(i)].append(int(i))
    return [sorted(g) for g in groups.values() if len(g) > 1]


def _describe(frame: pd.DataFrame, idx) -> list[dict]:
    return [{"path": frame.at[i, "path"], "label": frame.at[i, "label"], "split": frame.at[i, "split"]} for i in idx]


def _summarise_groups(frame: pd.DataFrame, groups: list[list[int]]) -> dict:
    splits = frame["split"].to_numpy()
    labels = frame["label"].to_numpy()
    within = defaultdict(int)
    cross, conflicting = [], []
    test_in_train = 0
    for g in groups:
        s = set(splits[g])
        if len(s) > 1:
            cross.append(g)
            if "test" in s and ({"train", "val"} & s):
                test_in_train += int(sum(splits[i] == "test" for i in g))
        else:
            within[next(iter(s))] += 1
        if len(set(labels[g])) > 1:
            conflicting.append(g)
    return {
        "groups": len(groups),
        "images_in_groups": int(sum(len(g) for g in groups)),
        "redundant_copies": int(sum(len(g) - 1 for g in groups)),
        "within_split_groups": dict(within),
        "cross_split_groups": len(cross),
        "test_images_also_in_train": test_in_train,
        "conflicting_label_groups": len(conflicting),
        "examples": [_describe(frame, g[:4]) for g in (conflicting[:4] + cross[:4] + groups)[:MAX_EXAMPLES]],
        "conflicting_examples": [_describe(frame, g[:4]) for g in conflicting[:MAX_EXAMPLES]],
    }


def run_checks(
    frame: pd.DataFrame,
    pixels: np.ndarray,
    problems: list[dict] | None = None,
    *,
    near_max_bits: int = NEAR_DUPLICATE_MAX_BITS,
    blank_max_std: float = BLANK_MAX_STD,
) -> dict:
    """Check a dataset. `frame` needs path/label/split/md5 columns aligned with `pixels`.

    Returns a JSON-ready dict with sections exact_duplicates, near_duplicates,
    near_blank and unreadable, each with counts and example paths.
    """
    frame = frame.reset_index(drop=True)
    n = len(frame)
    report: dict = {
        "n_images": n,
        "by_split": frame["split"].value_counts().to_dict(),
        "by_class": frame["label"].value_counts().to_dict(),
    }

    # Exact: same bytes on disk.
    by_md5 = frame.groupby("md5").indices
    exact_groups = [sorted(map(int, idx)) for h, idx in by_md5.items() if len(idx) > 1 and h]
    report["exact_duplicates"] = {"method": "MD5 of the file bytes", **_summarise_groups(frame, exact_groups)}

    # Near-blank: almost no variation in grey level.
    blank = np.nonzero(near_blank(pixels[:n], blank_max_std))[0]
    report["near_blank"] = {
        "method": f"pixel standard deviation <= {blank_max_std} grey levels",
        "count": int(len(blank)),
        "by_split": frame.loc[blank, "split"].value_counts().to_dict(),
        "by_class": frame.loc[blank, "label"].value_counts().to_dict(),
        "examples": _describe(frame, blank[:MAX_EXAMPLES]),
    }

    # Near: perceptual hash within a few bits, ignoring blanks (they all hash alike)
    # and pairs that are already exact duplicates.
    hashes = perceptual_hashes(pixels) if n else np.zeros(0, dtype=np.uint64)
    usable = np.setdiff1d(np.arange(n), blank)
    pairs = near_duplicate_pairs(hashes[usable], near_max_bits)
    pairs = usable[pairs] if len(pairs) else pairs.reshape(0, 2)
    md5 = frame["md5"].to_numpy()
    if len(pairs):
        pairs = pairs[md5[pairs[:, 0]] != md5[pairs[:, 1]]]
    near_groups = _groups_from_pairs(n, pairs)
    labels = frame["label"].to_numpy()
    splits = frame["split"].to_numpy()
    report["near_duplicates"] = {
        "method": f"perceptual hash (imagehash.phash, 64 bits) differing in <= {near_max_bits} bits; "
        "exact duplicates and near-blank images excluded",
        "pairs": int(len(pairs)),
        "cross_split_pairs": int((splits[pairs[:, 0]] != splits[pairs[:, 1]]).sum()) if len(pairs) else 0,
        "conflicting_label_pairs": int((labels[pairs[:, 0]] != labels[pairs[:, 1]]).sum()) if len(pairs) else 0,
        **_summarise_groups(frame, near_groups),
    }
    problems = problems or []
    report["unreadable"] = {"count": len(problems), "examples": problems[:MAX_EXAMPLES]}
    return report


def summary_table(report: dict) -> pd.DataFrame:
    """One row per finding, for display."""
    e, nd, b = report["exact_duplicates"], report["near_duplicates"], report["near_blank"]
    rows = [
        ("byte-identical duplicate groups", e["groups"]),
        ("  redundant copies (images beyond the first of each group)", e["redundant_copies"]),
        ("  groups spanning splits", e["cross_split_groups"]),
        ("  test images whose bytes also appear in train/val", e["test_images_also_in_train"]),
        ("  groups with conflicting labels", e["conflicting_label_groups"]),
        ("near-identical pairs (perceptual hash)", nd["pairs"]),
        ("  pairs spanning splits", nd["cross_split_pairs"]),
        ("  pairs with conflicting labels", nd["conflicting_label_pairs"]),
        ("near-blank images", b["count"]),
        ("unreadable files", report["unreadable"]["count"]),
    ]
    return pd.DataFrame(rows, columns=["finding", "count"]).set_index("finding")


def check_dataset(data_dir, *, seed: int = 42, progress: bool = True) -> dict:
    """Run every check on the whole dataset in `data_dir` (all its classes, its own splits)."""
    from . import data
    from .synthetic import is_synthetic

    classes = data.available_classes(data_dir)
    frame, ds_report = data.discover(data_dir, classes, seed=seed)
    frame["md5"] = data.content_hashes(frame)
    pixels, ok, problems = data.load_images(frame, 48, progress=progress)
    keep = ok.copy()
    report = run_checks(frame[keep].reset_index(drop=True), pixels[keep], problems)
    report["data_dir"] = str(data_dir)
    report["classes_checked"] = list(classes)
    report["synthetic"] = is_synthetic(data_dir)
    report["layout"] = ds_report.layout
    report["skipped_non_images"] = {"count": len(ds_report.skipped_files), "examples": ds_report.skipped_files[:12]}
    report["empty_class_folders"] = ds_report.empty_class_folders
    report["fingerprint"] = data.fingerprint(frame, frame["md5"])
    return report
