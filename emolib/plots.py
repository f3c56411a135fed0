"""Figures for the EDA and reports (matplotlib/seaborn), saved under reports/figures/ too.

When the data is synthetic, every figure is stamped so it can never pass as a result
on real faces.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

SYNTHETIC_STAMP = "SYNTHETIC DATA - not real faces"
_state = {"synthetic": False, "figures_dir": Path("reports/figures")}


def configure(*, synthetic: bool, figures_dir: str | Path = "reports/figures") -> None:
    """Set once per notebook: whether to stamp figures, and where `save` writes."""
    _state["synthetic"] = bool(synthetic)
    _state["figures_dir"] = Path(figures_dir)
    sns.set_theme(style="whitegrid", context="notebook")


def stamp_synthetic(fig: plt.Figure) -> plt.Figure:
    """Write SYNTHETIC DATA across a figure (once), so a figure made from generated faces is never
    mistaken for a result."""
    if not getattr(fig, "_emolib_stamped", False):
        fig.text(
            0.5,
            0.5,
            SYNTHETIC_STAMP,
            ha="center",
            va="center",
            fontsize=22,
            color="red",
            alpha=0.25,
            rotation=20,
            transform=fig.transFigure,
            zorder=100,
        )
        fig._emolib_stamped = True
    return fig


def save(fig: plt.Figure, name: str) -> Path:
    """Stamp (if synthetic) and save a figure as reports/figures/<name>.png, atomically."""
    from .runinfo import atomic_path

    if _state["synthetic"]:
        stamp_synthetic(fig)
    path = _state["figures_dir"] / f"{name}.png"
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    return path


def banner_html(synthetic: bool) -> str:
    from .synthetic import SYNTHETIC_BANNER

    if not synthetic:
        return ""
    return (
        '<div style="background:#b00020;color:white;padding:10px 14px;font-weight:bold;'
        f'font-size:15px;border-radius:4px">&#9888; {SYNTHETIC_BANNER}</div>'
    )


def class_counts(counts: pd.DataFrame, title: str = "Images per class and split") -> plt.Figure:
    splits = [c for c in ("train", "val", "test") if c in counts.columns]
    long = (
        counts[splits].reset_index().melt(id_vars=counts.index.name or "label", var_name="split", value_name="images")
    )
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(counts)), 4))
    sns.barplot(data=long, x=long.columns[0], y="images", hue="split", ax=ax)
    for container in ax.containers:
        ax.bar_label(container, fontsize=8)
    ax.set(title=title, xlabel="", ylabel="images")
    return fig


def sample_grid(
    pixels: np.ndarray,
    labels: np.ndarray,
    classes,
    n_per_class: int = 8,
    seed: int = 0,
    titles: list[str] | None = None,
) -> plt.Figure:
    """Rows = classes, columns = random examples of that class."""
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(len(classes), n_per_class, figsize=(1.2 * n_per_class, 1.3 * len(classes)), squeeze=False)
    for r, name in enumerate(classes):
        idx = np.flatnonzero(labels == r)
        pick = rng.choice(idx, size=min(n_per_class, len(idx)), replace=False) if len(idx) else []
        for c in range(n_per_class):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(pick):
                ax.imshow(pixels[pick[c]], cmap="gray", vmin=0, vmax=255)
        axes[r, 0].set_title(name, loc="left", fontsize=10)
    fig.suptitle("Random training examples per class")
    fig.tight_layout()
    return fig


def image_stats(pixels: np.ndarray, frame: pd.DataFrame) -> pd.DataFrame:
    """Per image: mean brightness and contrast (std of grey levels), with label and split."""
    flat = pixels.reshape(len(pixels), -1).astype(np.float32)
    return pd.DataFrame(
        {
            "label": frame["label"].to_numpy(),
            "split": frame["split"].to_numpy(),
            "brightness": flat.mean(1),
            "contrast": flat.std(1),
        }
    )


def stat_distributions(stats: pd.DataFrame) -> plt.Figure:
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for ax, col in zip(axes, ("brightness", "contrast")):
        sns.kdeplot(data=stats, x=col, hue="label", common_norm=False, ax=ax, fill=False)
        ax.set_title(f"{col} per class (grey levels)")
    fig.tight_layout()
    return fig


def size_distribution(sizes: pd.DataFrame) -> plt.Figure:
    """Original width x height of the files (before resizing)."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    counts = sizes.value_counts().rename("images").reset_index()
    counts["size"] = counts["width"].astype(str) + "x" + counts["height"].astype(str)
    sns.barplot(data=counts.head(10), x="size", y="images", ax=ax)
    ax.set_title("Original image sizes (top 10)")
    return fig


def mean_faces(pixels: np.ndarray, labels: np.ndarray, classes) -> plt.Figure:
    """Average image per class and its difference from the overall mean."""
    overall = pixels.mean(0)
    fig, axes = plt.subplots(2, len(classes), figsize=(1.9 * len(classes), 4), squeeze=False)
    for i, name in enumerate(classes):
        m = pixels[labels == i].mean(0)
        axes[0, i].imshow(m, cmap="gray", vmin=0, vmax=255)
        axes[0, i].set_title(name)
        d = m - overall
        lim = max(1e-6, np.abs(d).max())
        axes[1, i].imshow(d, cmap="coolwarm", vmin=-lim, vmax=lim)
        for ax in axes[:, i]:
            ax.axis("off")
    axes[1, 0].set_title("minus overall mean", loc="left", fontsize=9)
    fig.suptitle("Mean face per class")
    fig.tight_layout()
    return fig


def image_pairs(groups: list[list[dict]], read, max_groups: int = 6, title: str = "") -> plt.Figure:
    """Show example duplicate groups side by side; `read(path)` returns a uint8 image."""
    groups = groups[:max_groups]
    width = max((len(g) for g in groups), default=1)
    fig, axes = plt.subplots(
        max(1, len(groups)), width, figsize=(2.0 * width, 2.1 * max(1, len(groups))), squeeze=False
    )
    for r, g in enumerate(groups):
        for c in range(width):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(g):
                item = g[c]
                try:
                    ax.imshow(read(item["path"]), cmap="gray", vmin=0, vmax=255)
                except Exception as e:  # show the problem instead of failing the notebook
                    ax.text(0.5, 0.5, str(e)[:40], ha="center", fontsize=6)
                ax.set_title(f"{item['split']}/{item['label']}\n{Path(item['path']).name}", fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def learning_curves(history: pd.DataFrame, title: str = "Learning curves") -> plt.Figure:
    """Loss, accuracy and validation macro-F1 per epoch across all stages, stages shaded."""
    metrics = [
        ("loss", "val_loss", "loss"),
        ("accuracy", "val_accuracy", "accuracy"),
        (None, "val_macro_f1", "validation macro-F1"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    x = history["epoch_global"] if "epoch_global" in history else np.arange(1, len(history) + 1)
    for ax, (train_col, val_col, name) in zip(axes, metrics):
        if train_col and train_col in history:
            ax.plot(x, history[train_col], "o-", label="train", ms=3)
        if val_col in history:
            ax.plot(x, history[val_col], "o-", label="validation", ms=3)
        ax.set(title=name, xlabel="epoch (all stages)")
        ax.legend(fontsize=8)
    if "stage" in history:
        palette = sns.color_palette("pastel", history["stage"].nunique())
        for k, (stage, part) in enumerate(history.groupby("stage", sort=False)):
            lo, hi = part["epoch_global"].min() - 0.5, part["epoch_global"].max() + 0.5
            for ax in axes:
                ax.axvspan(lo, hi, color=palette[k], alpha=0.25, lw=0)
            # inside the top of the plot (x in data, y in axes units), clear of the title
            axes[0].text(
                (lo + hi) / 2, 0.97, stage, ha="center", va="top", fontsize=8, transform=axes[0].get_xaxis_transform()
            )
    fig.suptitle(title)
    fig.tight_layout()
    return fig
