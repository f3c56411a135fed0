"""The set-up cell every analysis notebook shares: `open_run(...)`.

Each notebook opens with its papermill parameters, then one call:

    >>> run = open_run(profile=profile, classes=classes, data_dir=data_dir, seed=seed, reports_dir=reports_dir)
    >>> run.cfg, run.prepared, run.data_path

which resolves the RunConfig, finds (or, for the default folder only, generates) the data,
prepares the splits, points the figures at `reports/figures` and shows the SYNTHETIC DATA
banner when the data is generated.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Run:
    """What a notebook works with after its set-up cell."""

    cfg: object  # config.RunConfig
    data_path: Path
    prepared: object  # data.PreparedData
    reports_dir: Path
    started: float = field(default_factory=time.time)

    def model_dir(self, model_name: str) -> Path:
        """`reports/models/<model_name>/`."""
        return self.reports_dir / "models" / model_name

    @property
    def elapsed_s(self) -> float:
        return time.time() - self.started


def open_run(
    *,
    profile: str,
    classes: str,
    data_dir: str,
    seed: int,
    reports_dir: str,
    weights: str | None = None,
    model_name: str | None = None,
    progress: bool = True,
    banner: bool = True,
) -> Run:
    """Resolve parameters and data for a notebook; see the module docstring.

    model_name applies the profile's per-model overrides (image size, schedule) as the
    training notebook needs; progress shows the image-loading bar; banner displays the
    synthetic-data banner (when the data is synthetic).
    """
    from . import config, data, plots

    started = time.time()
    extra = {} if weights is None else {"weights": weights}
    cfg = config.resolve(
        profile=profile, classes=classes, data_dir=data_dir, seed=seed, reports_dir=reports_dir, **extra
    )
    if model_name is not None:
        cfg = dataclasses.replace(cfg, profile=cfg.profile.for_model(model_name))
    data_path = data.resolve_data_dir(cfg.data_dir, profile=cfg.profile, seed=cfg.seed)
    prepared = data.prepare(cfg, data_dir=data_path, progress=progress)
    reports = Path(reports_dir)
    plots.configure(synthetic=prepared.synthetic, figures_dir=reports / "figures")
    if banner and prepared.synthetic:
        from IPython.display import HTML, display

        display(HTML(plots.banner_html(True)))
    return Run(cfg=cfg, data_path=data_path, prepared=prepared, reports_dir=reports, started=started)
