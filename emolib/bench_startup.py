"""Start-up benchmark: ``emolib predict photo.jpg`` with the default model, as a whole process.

`make bench` calls `run` (from `emolib.bench.main`), which writes ``reports/bench/startup.json``.
Each measurement spawns a fresh ``python -m emolib.cli predict IMAGE`` (nothing imported or
cached in this process counts) and takes its wall time and peak resident memory; the memory
is the child's own high-water mark (``VmHWM`` of /proc/self/status, written by the child at
exit): ``ru_maxrss`` from ``os.wait4`` would also count the copy of this (large) benchmark
process that the child is between fork and exec, and read ~2 GB inside ``make bench``.
Inputs: one 48x48 FER2013 test crop (used whole) and a real photo, matplotlib's
``grace_hopper.jpg`` (face detection with the default detector first).

For comparison the same image goes through the Keras backend in a fresh process
(``load_predictor(backend='keras')``: what ``emolib predict`` cost before LiteRT), and the
labels of both are compared. One more child checks that a default-model prediction leaves
``tensorflow`` out of ``sys.modules``. Targets (2-core CPU): wall <= 1.0 s and peak <= 300 MB.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET_WALL_S = 1.0
TARGET_PEAK_MB = 300.0

KERAS_CHILD = """
import sys
from emolib.predict import load_predictor
p = load_predictor(None, backend="keras")
for r in p.predict(sys.argv[1]):
    print(r.emotion, round(r.confidence, 4))
"""
TF_CHECK_CHILD = """
import sys
from emolib.cli import main
rc = main(["predict", sys.argv[1], "--no-progress"])
print("TENSORFLOW_IMPORTED", "tensorflow" in sys.modules, "KERAS_IMPORTED", "keras" in sys.modules)
"""


# Prepended to the child's program: at exit it reports the peak RSS of its own address space
# (VmHWM starts afresh at exec, unlike ru_maxrss, which keeps the forked parent's copy).
HWM_MARKER = "EMOLIB_VMHWM_KB"
HWM_PRELUDE = f"""
import atexit as _atexit, sys as _sys
def _emolib_hwm():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                _sys.stderr.write("{HWM_MARKER} " + line.split()[1] + "\\n")
_atexit.register(_emolib_hwm)
"""
RUN_MODULE = """
import runpy
_mod = sys.argv[1]
sys.argv = [_mod, *sys.argv[2:]]
runpy.run_module(_mod, run_name="__main__", alter_sys=True)
"""


def _with_hwm_report(args: list[str]) -> list[str]:
    """The same command with the child reporting its own peak RSS (Linux; elsewhere unchanged)."""
    if not Path("/proc/self/status").is_file() or len(args) < 3 or args[1] not in ("-m", "-c"):
        return args
    if args[1] == "-m":
        return [args[0], "-c", HWM_PRELUDE + "import sys\n" + RUN_MODULE, *args[2:]]
    return [args[0], "-c", HWM_PRELUDE + args[2], *args[3:]]


def spawn_measured(args: list[str], timeout: float = 300.0) -> dict:
    """Run one child process: its wall time (s), its own peak RSS (MB), exit status and output."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    args = _with_hwm_report(args)
    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, stdout=fo, stderr=fe, env=env, text=True)
        deadline = t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped: keep Popen from waiting again
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read(), fe.read()
    hwm = [line.split()[1] for line in err.splitlines() if line.startswith(HWM_MARKER)]
    err = "".join(line + "\n" for line in err.splitlines() if not line.startswith(HWM_MARKER))
    if hwm:
        peak_mb = int(hwm[-1]) / 1024
    else:  # no /proc: ru_maxrss, in kilobytes on Linux, bytes on macOS
        peak_mb = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    # CPU seconds (user + system) depend less on what else runs on the machine than wall time does
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_mb": peak_mb,
        "rc": proc.returncode,
        "stdout": out,
        "stderr": err,
    }


def _labels(stdout: str, cli: bool) -> list[str]:
    """The emotion of each face from `emolib predict`'s table (or the Keras child's lines)."""
    labels = []
    for line in stdout.splitlines():
        parts = line.split()
        if cli:
            # "<path>  <face>  <emotion> <confidence>" rows come before the blank line
            if not parts:
                break
            if len(parts) >= 4:
                labels.append(parts[-2])
        elif len(parts) == 2:
            labels.append(parts[0])
    return labels


def inputs(data_dir: str | Path | None, workdir: Path) -> dict[str, Path]:
    """{'fer_crop': a 48x48 FER2013 test image (or a generated crop), 'photo': grace_hopper.jpg}."""
    from PIL import Image

    out: dict[str, Path] = {}
    test = Path(data_dir) / "test" if data_dir else None
    crops = sorted((test / "surprise").glob("*.jpg"))[:1] if test is not None and (test / "surprise").is_dir() else []
    if crops:
        out["fer_crop"] = crops[0]
    else:  # no FER2013 here: a generated face crop stands in
        from .synthetic import render_face

        path = workdir / "crop48.png"
        Image.fromarray(np.asarray(render_face("surprise", np.random.default_rng(0), size=48), np.uint8)).save(path)
        out["fer_crop"] = path
    import matplotlib.cbook

    out["photo"] = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    return out


def run(out_dir: str | Path, data_dir: str | Path | None = None, runs: int = 3) -> dict:
    """Measure and write out_dir/startup.json; returns its content."""
    from .backends import default_model_dir
    from .modelfolder import is_model_dir
    from .runinfo import atomic_write_json, library_versions, machine_info, now_iso

    out_dir = Path(out_dir)
    result: dict = {
        "created": now_iso(),
        "machine": machine_info(),
        "versions": library_versions(),
        "target_wall_s": TARGET_WALL_S,
        "target_peak_mb": TARGET_PEAK_MB,
        "runs": runs,
        "what": __doc__.split("\n\n")[1].replace("\n", " "),
    }
    if not is_model_dir(default_model_dir()):
        result["skipped"] = f"no default model in {default_model_dir()}"
        atomic_write_json(out_dir / "startup.json", result)
        return result
    with tempfile.TemporaryDirectory(prefix="emolib-startup-") as tmp:
        for name, image in inputs(data_dir, Path(tmp)).items():
            cli = [sys.executable, "-m", "emolib.cli", "predict", str(image), "--no-progress"]
            spawn_measured(cli)  # warm the OS file cache once, as a user's second run would be
            lite = [spawn_measured(cli) for _ in range(max(1, runs))]
            keras = spawn_measured([sys.executable, "-c", KERAS_CHILD, str(image)])
            tf_check = spawn_measured([sys.executable, "-c", TF_CHECK_CHILD, str(image)])
            wall = float(np.median([r["wall_s"] for r in lite]))
            peak = float(max(r["peak_mb"] for r in lite))
            lite_labels, keras_labels = _labels(lite[0]["stdout"], True), _labels(keras["stdout"], False)
            result[name] = {
                "image": str(image),
                "command": "python -m emolib.cli predict IMAGE --no-progress",
                "rc": [r["rc"] for r in lite],
                "wall_s": wall,
                "wall_s_runs": [r["wall_s"] for r in lite],
                "cpu_s": float(np.median([r["cpu_s"] for r in lite])),
                "load_average_1min": os.getloadavg()[0],
                "peak_mb": peak,
                "labels": lite_labels,
                "backend_line": next((ln for ln in lite[0]["stderr"].splitlines() if "default model" in ln), None),
                "keras": {
                    "wall_s": keras["wall_s"],
                    "cpu_s": keras["cpu_s"],
                    "peak_mb": keras["peak_mb"],
                    "labels": keras_labels,
                    "rc": keras["rc"],
                },
                "same_labels_as_keras": lite_labels == keras_labels and bool(lite_labels),
                "tensorflow_imported": "TENSORFLOW_IMPORTED True" in tf_check["stdout"],
                "pass": bool(wall <= TARGET_WALL_S and peak <= TARGET_PEAK_MB and all(r["rc"] == 0 for r in lite)),
            }
    atomic_write_json(out_dir / "startup.json", result)
    return result


def format_report(result: dict) -> str:
    if "skipped" in result:
        return f"start-up: skipped ({result['skipped']})"
    lines = [
        f"start-up, `emolib predict IMAGE` with the default model as a whole process (median of {result['runs']}; "
        f"targets <= {TARGET_WALL_S:.1f} s, <= {TARGET_PEAK_MB:.0f} MB):"
    ]
    for name in ("fer_crop", "photo"):
        r = result.get(name)
        if r:
            lines.append(
                f"  {name:8s} LiteRT {r['wall_s']:.2f} s (cpu {r['cpu_s']:.2f} s) {r['peak_mb']:.0f} MB "
                f"{r['labels']}  | Keras {r['keras']['wall_s']:.2f} s (cpu {r['keras']['cpu_s']:.2f} s) "
                f"{r['keras']['peak_mb']:.0f} MB {r['keras']['labels']}  "
                f"same labels: {r['same_labels_as_keras']}, TensorFlow imported: {r['tensorflow_imported']}"
                f"  {'PASS' if r['pass'] else 'FAIL'}"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(prog="python -m emolib.bench_startup", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="reports/bench")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    print(format_report(run(a.out, a.data_dir, a.runs)))
