"""The notebooks run end to end under papermill in the smoke profile."""
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _kernel():
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    return "emolib" if "emolib" in specs else "python3"


def run_notebook(name, out_dir, **params):
    import papermill as pm

    out = out_dir / f"{Path(name).stem}.ipynb"
    pm.execute_notebook(str(ROOT / "notebooks" / name), str(out), parameters=params, kernel_name=_kernel(),
                        cwd=str(ROOT), progress_bar=False)
    return json.loads(out.read_text())


@pytest.mark.slow
def test_eda_notebook_smoke(tmp_path, synthetic_dir):
    reports = tmp_path / "reports"
    nb = run_notebook("00_eda.ipynb", tmp_path, profile="smoke", classes="angry,sad,surprise",
                      data_dir=str(synthetic_dir), seed=1, reports_dir=str(reports))
    text = json.dumps(nb)
    assert "SYNTHETIC DATA" in text  # the banner
    checks = json.loads((reports / "data_checks.json").read_text())
    assert checks["synthetic"] is True and checks["n_images"] == 7 * 28
    run = json.loads((reports / "run.json").read_text())
    assert run["params"]["profile"]["name"] == "smoke" and run["data"]["synthetic"] is True
    assert "tensorflow" in " ".join(run["versions"]) or "keras" in run["versions"]
    assert {p.name for p in (reports / "figures").glob("*.png")} >= {"eda_class_counts.png", "eda_samples.png",
                                                                     "eda_mean_faces.png"}
