"""`make data`: fetch FER2013 from Kaggle when the user is online and has credentials.

This is the only code in the project that touches the network. Without kagglehub or
Kaggle credentials it prints the manual steps and exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from .data import HOW_TO_GET_DATA

KAGGLE_DATASET = "msambare/fer2013"
# Image counts of the Kaggle folder version: train is the Training usage, test holds
# PublicTest + PrivateTest. A test folder of 3,589 (PublicTest only) is accepted too.
EXPECTED_TRAIN = 28_709
EXPECTED_TEST = {7_178, 3_589}


def count_images(root: Path) -> dict[str, int]:
    from .images import is_image_path

    return {
        split: sum(1 for p in (root / split).rglob("*") if is_image_path(p))
        for split in ("train", "test")
        if (root / split).is_dir()
    }


def verify(root: Path) -> list[str]:
    """Problems with a FER2013 folder, empty when the class counts match Kaggle's."""
    counts = count_images(root)
    problems = []
    if counts.get("train") != EXPECTED_TRAIN:
        problems.append(f"train has {counts.get('train', 0)} images, expected {EXPECTED_TRAIN}")
    if counts.get("test") not in EXPECTED_TEST:
        problems.append(f"test has {counts.get('test', 0)} images, expected one of {sorted(EXPECTED_TEST)}")
    return problems


def have_credentials() -> bool:
    home = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle"))
    return (
        bool(os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"))
        or (home / "kaggle.json").is_file()
        or bool(os.environ.get("KAGGLE_API_TOKEN"))
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emolib.download", description=__doc__)
    parser.add_argument("--dest", default="data/raw/fer2013")
    args = parser.parse_args(argv)
    dest = Path(args.dest)
    if dest.exists() and not verify(dest):
        print(f"FER2013 already in {dest}: {count_images(dest)} - nothing to do.")
        return 0
    try:
        import kagglehub
    except ImportError:
        print("kagglehub is not installed (pip install -e '.[download]').\n" + HOW_TO_GET_DATA)
        return 2
    if not have_credentials():
        print("No Kaggle credentials found (~/.kaggle/kaggle.json or KAGGLE_USERNAME/KAGGLE_KEY).\n" + HOW_TO_GET_DATA)
        return 2
    print(f"Downloading {KAGGLE_DATASET} with kagglehub ...")
    try:
        src = Path(kagglehub.dataset_download(KAGGLE_DATASET))
    except Exception as e:  # network or auth failure: say so, with the manual route
        print(f"Download failed: {e}\n{HOW_TO_GET_DATA}")
        return 2
    problems = verify(src)
    if problems:
        print(f"Downloaded copy at {src} does not look like FER2013: {problems}")
        return 2
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    print(f"FER2013 ready in {dest}: {count_images(dest)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
