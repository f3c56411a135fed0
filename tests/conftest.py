"""Shared fixtures: a small synthetic dataset, the real FER2013 location, and a tmp reports dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_FER2013 = Path(os.environ.get("EMOLIB_FER2013", ROOT.parent / "shared" / "data" / "fer2013"))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import emolib  # noqa: E402, F401 - sets TensorFlow's oneDNN choice before any test module imports TensorFlow

try:  # hypothesis profiles for tests/code/test_fuzz.py: bounded in `make test`, large in `make fuzz`
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("bounded", max_examples=30, deadline=None, database=None, print_blob=True)
    _hypothesis_settings.register_profile("deep", max_examples=1500, deadline=None, database=None, print_blob=True)
    _hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "bounded"))
except ImportError:  # the fuzz tests skip themselves without hypothesis
    pass


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    """A FER2013-layout synthetic dataset with all seven classes (20 train / 8 test each)."""
    from emolib.config import FER2013_CLASSES
    from emolib.synthetic import make_synthetic_dataset

    root = tmp_path_factory.mktemp("synthetic") / "faces"
    return make_synthetic_dataset(root, classes=FER2013_CLASSES, train_per_class=20, test_per_class=8, seed=1)


@pytest.fixture(scope="session")
def real_fer2013() -> Path:
    if not (REAL_FER2013 / "train").is_dir():
        pytest.skip(
            f"real FER2013 not found at {REAL_FER2013} (set EMOLIB_FER2013 or put it in ../shared/data/fer2013)"
        )
    return REAL_FER2013
