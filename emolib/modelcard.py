"""The model card (`reports/models/<model>/model.json`): what a trained model is and how it came to be."""

from __future__ import annotations

from pathlib import Path

from .config import TRAIN_LOOP_VERSION
from .modelfolder import RUN_KEY_FILE, write_card  # noqa: F401 - write_card: the card is written through modelfolder
from .runinfo import atomic_write_json, library_versions, machine_info, now_iso


def build_card(
    *,
    model_name: str,
    cfg,
    classes,
    input_shape,
    info: dict,
    result,
    stages,
    val_metrics: dict,
    data_fingerprint: str,
    synthetic: bool,
    params: dict,
    device: str,
    aux_classes=(),
    aux_fingerprint: str = "",
    class_weights: dict | None = None,
    batchnorm: dict | None = None,
) -> dict:
    """Collect everything the comparison and the report need to know about one trained model.

    `weights_used` names the source the backbone really started from ('imagenet', 'none', a file, or
    'fer2013-disjoint:<classes> (cache key ...)'); `weights_source` has the details and `weights_notes`
    every fallback taken on the way (e.g. no network, or CLASSES=all leaving nothing to pretrain on).
    `aux_classes`: the auxiliary classes trained on besides `classes` (the saved model outputs
    `classes` only). `class_weights`: {class name: loss weight} as trained, with the run's
    `class_weight_power` beside them (1: the balanced rule); `mixup_alpha` (0: no mixup). `batchnorm`:
    `bnstats.recompute_after_training`'s record (whether the BatchNorm statistics were recomputed).
    """
    planned = {s.name: s for s in stages}
    per_stage = []
    for row in result.epochs_per_stage:
        stage = planned.get(row.get("name"))
        per_stage.append(
            {
                **row,
                "epochs_planned": stage.epochs if stage else None,
                "trainable_spec": stage.trainable if stage else None,
            }
        )
    return {
        "model_name": model_name,
        "classes": list(classes),
        "input_shape": list(input_shape),
        "input": "raw grayscale pixels, float32 0..255, shape (S, S, 1); all preprocessing is inside the graph",
        "preprocessing": info.get("preprocessing"),
        "weights_requested": info.get("weights_requested"),
        "weights_used": info.get("weights_used"),
        "weights_source": info.get("weights_source"),
        "weights_notes": list(info.get("weights_notes") or []),
        "aux_classes": list(aux_classes),
        "aux_fingerprint": aux_fingerprint or None,
        "class_weights": {str(c): round(float(w), 4) for c, w in (class_weights or {}).items()} or None,
        "class_weight_power": cfg.class_weight_power,
        "mixup_alpha": cfg.profile.mixup_alpha,
        "batchnorm_statistics": batchnorm,
        "params": params,
        "stages": [
            {
                "name": s.name,
                "trainable": s.trainable,
                "epochs": s.epochs,
                "learning_rate": s.learning_rate,
                "lr_schedule": s.lr_schedule,
            }
            for s in stages
        ],
        "epochs_per_stage": per_stage,
        "epochs_total": int(sum(r.get("epochs_run", 0) for r in result.epochs_per_stage)),
        "wall_time_s": round(float(result.wall_time_s), 1),
        "resumed": bool(result.resumed),
        "seed": cfg.seed,
        "profile": cfg.profile.name,
        "data_dir": str(cfg.data_dir),
        "data_fingerprint": data_fingerprint,
        "synthetic": bool(synthetic),
        "val_metrics": val_metrics,
        "device": device,
        "machine": machine_info(),
        "versions": library_versions(),
        "created": now_iso(),
    }


def run_key(
    *,
    model_name: str,
    cfg,
    image_size: int,
    data_fingerprint: str,
    weights_used: str,
    stages=(),
    aux_classes=(),
    aux_fingerprint: str = "",
) -> dict:
    """What a checkpoint in reports/models/<model>/ was trained for; a change means start over.

    weights_used of a pretrained backbone carries its cache key, so new pretrained weights restart
    the fine-tuning too. The auxiliary classes, tempered class weights and mixup enter only when used
    (older keys stay valid).
    """
    key = {
        "model_name": model_name,
        "profile": cfg.profile.name,
        "classes": list(cfg.classes),
        "seed": cfg.seed,
        "image_size": image_size,
        "data_fingerprint": data_fingerprint,
        "weights_used": weights_used,
        "max_train_per_class": cfg.profile.max_train_per_class,
        "stages": [[s.name, s.trainable, s.epochs, s.learning_rate, s.lr_schedule] for s in stages],
        # early stopping changes which weights a run ends with (a run to the end vs one cut short)
        "early_stopping_patience": cfg.profile.early_stopping_patience,
        # another training loop gives other batches from the same seed
        "train_loop_version": TRAIN_LOOP_VERSION,
    }
    if aux_classes:
        key.update(aux_classes=list(aux_classes), aux_fingerprint=aux_fingerprint)
    if cfg.class_weight_power != 1.0:  # other weights, another run (the seed's rule keeps older keys)
        key["class_weight_power"] = cfg.class_weight_power
    if cfg.profile.mixup_alpha:  # other training targets, another run
        key["mixup_alpha"] = cfg.profile.mixup_alpha
    return key


def prepare_out_dir(out_dir: str | Path, key: dict) -> bool:
    """Keep `out_dir` for resuming only if it was made for the same run key; else clear it.

    Returns True when an older run's files were removed (parameters or data changed),
    so a model trained on other data can never be taken as this run's result.
    """
    import json
    import shutil

    out_dir = Path(out_dir)
    key_file = out_dir / RUN_KEY_FILE
    stale = (
        out_dir.exists()
        and any(out_dir.iterdir())
        and (not key_file.exists() or json.loads(key_file.read_text()) != json.loads(json.dumps(key)))
    )
    if stale:
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(key_file, key)
    return stale
