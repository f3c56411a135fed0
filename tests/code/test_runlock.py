"""One run per reports folder: a second `make all` on the same REPORTS stops at once; a killed run leaves no lock."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emolib import runlock

ROOT = Path(__file__).resolve().parents[2]


def _env():
    env = dict(os.environ)
    env.pop(runlock.ENV_VAR, None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def _holder(reports: Path, what="make all"):
    """A process holding the lock the way `make all` does (runlock, then exec of a long command)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emolib.runlock",
            str(reports),
            "--what",
            what,
            "--",
            sys.executable,
            "-c",
            "import time; time.sleep(120)",
        ],
        env=_env(),
        start_new_session=True,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        if runlock.holder_info(reports / runlock.LOCK_NAME).get("pid") == proc.pid:
            return proc
        assert proc.poll() is None, "the holder exited"
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the holder never took the lock")


def _run_locked(reports: Path, marker: Path):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "emolib.runlock",
            str(reports),
            "--",
            sys.executable,
            "-c",
            f"open({str(marker)!r}, 'w').write('ran')",
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_second_run_fails_fast_and_a_sigkilled_holder_leaves_no_lock(tmp_path):
    reports = tmp_path / "reports"
    holder = _holder(reports)
    try:
        stale = reports / "notebooks" / ".tmp-00_eda.ipynb"
        stale.parent.mkdir(parents=True)
        stale.write_text("{half a notebook")
        marker = tmp_path / "ran"
        t0 = time.perf_counter()
        second = _run_locked(reports, marker)
        assert time.perf_counter() - t0 < 20
        assert second.returncode == runlock.EXIT_LOCKED
        assert f"{reports}/ is in use by another make all (pid {holder.pid}, started " in second.stderr
        assert "wait for it or use REPORTS=other_dir" in second.stderr
        assert not marker.exists() and stale.exists()  # touched nothing
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
    # SIGKILL: the kernel released the lock; the next run takes it and cleans the interrupted run's temp files
    third = _run_locked(reports, marker)
    assert third.returncode == 0, third.stderr
    assert marker.read_text() == "ran" and not stale.exists()
    assert runlock.holder_info(reports / runlock.LOCK_NAME)["pid"] != holder.pid


def test_stale_temp_files_are_the_temporary_names_only(tmp_path):
    for name in [
        "notebooks/.tmp-train_cnn.ipynb",
        "models/cnn/.model.json.tmp-abc123.json",
        "models/cnn/checkpoint/.last_a.weights.h5.tmp-x1y2.weights.h5",
        "models/cnn/model.json",
        ".gitkeep",
        ".lock",
        "notebooks/train_cnn.ipynb",
    ]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    assert {p.name for p in runlock.stale_temp_files(tmp_path)} == {
        ".tmp-train_cnn.ipynb",
        ".model.json.tmp-abc123.json",
        ".last_a.weights.h5.tmp-x1y2.weights.h5",
    }


def test_atomic_writes_use_names_the_lock_cleans(tmp_path):
    from emolib.runinfo import atomic_path

    with atomic_path(tmp_path / "metrics.json") as tmp:
        tmp.write_text("{}")
        assert runlock.stale_temp_files(tmp_path) == [tmp]  # what a kill at this moment would leave
    assert runlock.stale_temp_files(tmp_path) == [] and (tmp_path / "metrics.json").exists()


def _make(*args, timeout=60):
    return subprocess.run(
        ["make", "--no-print-directory", *args], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def venv_ready():
    if not (ROOT / ".venv" / "bin" / "python").exists() or _make("-q", "setup").returncode != 0:
        pytest.skip("the project's .venv is not set up (make setup): the make-level checks would install it")


def test_make_all_on_a_folder_in_use_stops_with_the_message(tmp_path, venv_ready):
    reports = tmp_path / "reports"
    holder = _holder(reports)
    try:
        t0 = time.perf_counter()
        second = _make("all", "PROFILE=smoke", "MODELS=cnn", f"REPORTS={reports}")
        assert time.perf_counter() - t0 < 30
        assert second.returncode != 0
        assert f"{reports}/ is in use by another make all (pid {holder.pid}" in second.stderr
        assert not (reports / "params.json").exists() and not (reports / "notebooks").exists()
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()


def test_make_j_runs_inside_the_lock(tmp_path, venv_ready):
    """`make -n` still runs recipes that call $(MAKE): the locked inner make gets the goals and the jobserver."""
    reports = tmp_path / "reports"
    out = _make("-n", "-j2", "all", "PROFILE=smoke", "MODELS=cnn vgg16", f"REPORTS={reports}")
    assert out.returncode == 0, out.stderr
    assert "jobserver unavailable" not in out.stderr
    assert "train_cnn" in out.stdout and "train_vgg16" in out.stdout and "40_report" in out.stdout
    assert not (reports / "params.json").exists()
