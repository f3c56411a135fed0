"""Fixtures shared by tests/code."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def toy(tmp_path_factory):
    """Two tiny trained stand-in models under a reports folder (tests/code/toy_study.py)."""
    from tests.code.toy_study import build_toy_study

    return build_toy_study(tmp_path_factory.mktemp("study"))
