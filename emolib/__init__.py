"""emolib: the shared package behind the emotion-recognition notebooks.

Modules, one per stage: config (parameters), images (safe reading), data (loaders,
splits, weights), checks (data checks), pipeline (tf.data), synthetic (generated
faces), models, train, evaluate, explain, faces, predict, video
(clips, with tracking), cli.
"""
__version__ = "0.1.0"


def load_predictor(model_dir=None, **kwargs):
    """Load a trained model directory (reports/models/<model>) as a Predictor; without one, the default
    model shipped with emolib (angry/sad/surprise, run by LiteRT without importing TensorFlow)."""
    from .predict import load_predictor as _load

    return _load(model_dir, **kwargs)
