"""Duplicate, conflict and blank detection on planted cases, and on real FER2013."""

import shutil

import numpy as np
from PIL import Image

from emolib import checks, data


def _planted(tmp_path, synthetic_dir):
    root = tmp_path / "d"
    shutil.copytree(synthetic_dir, root)
    tr = sorted((root / "train" / "angry").iterdir())
    # 1) the same bytes in train and test (cross-split leak)
    shutil.copy(tr[0], root / "test" / "angry" / "leak.png")
    # 2) the same bytes in train under another label (conflict)
    shutil.copy(tr[1], root / "train" / "sad" / "conflict.png")
    # 3) a near-identical re-encode: slightly brighter, saved as JPEG
    arr = np.asarray(Image.open(tr[2]), dtype=np.int16)
    Image.fromarray(np.clip(arr + 3, 0, 255).astype(np.uint8)).save(root / "train" / "angry" / "near.jpg", quality=95)
    # 4) two near-blank images
    Image.new("L", (48, 48), 0).save(root / "train" / "surprise" / "black.png")
    Image.fromarray(
        np.full((48, 48), 128, np.uint8) + np.random.default_rng(0).integers(0, 2, (48, 48), dtype=np.uint8)
    ).save(root / "test" / "sad" / "grey.png")
    return root


def test_planted_problems_are_found(tmp_path, synthetic_dir):
    report = checks.check_dataset(_planted(tmp_path, synthetic_dir), progress=False)
    e = report["exact_duplicates"]
    assert e["groups"] == 2 and e["redundant_copies"] == 2
    assert e["cross_split_groups"] == 1 and e["test_images_also_in_train"] == 1
    assert e["conflicting_label_groups"] == 1
    assert report["near_blank"]["count"] == 2
    near = report["near_duplicates"]
    assert near["pairs"] >= 1
    assert any({x["path"].rsplit("/", 1)[-1] for x in g} >= {"near.jpg"} for g in near["examples"])
    assert report["synthetic"] is True
    table = checks.summary_table(report)
    assert table.loc["near-blank images", "count"] == 2


def test_clean_synthetic_data_has_no_exact_duplicates(synthetic_dir):
    report = checks.check_dataset(synthetic_dir, progress=False)
    assert report["exact_duplicates"]["groups"] == 0 and report["near_blank"]["count"] == 0


def test_near_duplicate_pairs_on_hashes():
    h = np.array([0, 1, 3, 0xFFFF, 0xFFFF_FFFF_FFFF_FFFF], dtype=np.uint64)
    pairs = {tuple(p) for p in checks.near_duplicate_pairs(h, max_bits=2, block=2)}
    assert pairs == {(0, 1), (0, 2), (1, 2)}


def test_real_fer2013_checks(real_fer2013):
    """FER2013's known flaws are found: duplicates (also across splits and with conflicting labels), blanks."""
    report = checks.check_dataset(real_fer2013, progress=False)
    assert report["n_images"] == 28709 + 3589
    e = report["exact_duplicates"]
    assert e["groups"] > 1000 and e["cross_split_groups"] > 100 and e["conflicting_label_groups"] > 10
    assert 5 <= report["near_blank"]["count"] <= 100
    assert report["near_duplicates"]["pairs"] > 0
    frame, _ = data.discover(real_fer2013, data.available_classes(real_fer2013))
    assert len(frame) == 32298
