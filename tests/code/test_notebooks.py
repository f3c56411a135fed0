"""The notebooks run end to end under papermill in the smoke profile."""

import json

import pytest

from tests.helpers import run_notebook


@pytest.mark.slow
def test_eda_notebook_smoke(tmp_path, synthetic_dir):
    reports = tmp_path / "reports"
    nb = run_notebook(
        "00_eda.ipynb",
        tmp_path,
        profile="smoke",
        classes="angry,sad,surprise",
        data_dir=str(synthetic_dir),
        seed=1,
        reports_dir=str(reports),
    )
    text = json.dumps(nb)
    assert "SYNTHETIC DATA" in text  # the banner
    checks = json.loads((reports / "data_checks.json").read_text())
    assert checks["synthetic"] is True and checks["n_images"] == 7 * 28
    run = json.loads((reports / "run.json").read_text())
    assert run["params"]["profile"]["name"] == "smoke" and run["data"]["synthetic"] is True
    assert "tensorflow" in " ".join(run["versions"]) or "keras" in run["versions"]
    assert {p.name for p in (reports / "figures").glob("*.png")} >= {
        "eda_class_counts.png",
        "eda_samples.png",
        "eda_mean_faces.png",
    }
