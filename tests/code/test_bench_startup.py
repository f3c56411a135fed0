"""The start-up benchmark measures the child's own memory, not the forked copy of the benchmark."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from emolib import bench_startup


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM comes from /proc (Linux)")
def test_child_peak_memory_is_its_own():
    parent = np.ones((400, 1024, 1024), np.uint8)  # this process: ~400 MB resident
    child = "import numpy as np\na = np.ones(60_000_000, np.uint8)\nprint(int(a.sum()))"
    r = bench_startup.spawn_measured([sys.executable, "-c", child])
    assert r["rc"] == 0 and r["stdout"].strip() == "60000000"
    assert 60 <= r["peak_mb"] < 250, r["peak_mb"]  # ~60 MB array + the interpreter, not the 400 MB parent
    assert bench_startup.HWM_MARKER not in r["stderr"]
    del parent


def test_module_children_keep_their_arguments():
    r = bench_startup.spawn_measured([sys.executable, "-m", "json.tool", "--help"])
    assert r["rc"] == 0 and "usage" in r["stdout"].lower() and r["peak_mb"] > 0
