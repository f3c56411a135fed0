"""Fixtures shared by tests/code."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def toy(tmp_path_factory):
    """Two tiny trained stand-in models under a reports folder (tests/code/toy_study.py)."""
    from tests.code.toy_study import build_toy_study

    return build_toy_study(tmp_path_factory.mktemp("study"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny stand-in model folder (tests/helpers.make_model_dir), one per test module."""
    from tests.helpers import make_model_dir

    return make_model_dir(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="module")
def predictor(model_dir):
    """The stand-in model loaded as a Predictor (Keras backend)."""
    from emolib.predict import load_predictor

    return load_predictor(model_dir)
