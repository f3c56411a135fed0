import dataclasses
import json

import pytest

from emolib import config


def test_class_names_are_normalised():
    assert config.normalise_class_name("Anger") == "angry"
    assert config.normalise_class_name(" SADNESS ") == "sad"
    assert config.normalise_class_name("Surprised") == "surprise"
    assert config.parse_classes("anger,Sad,surprise") == ("angry", "sad", "surprise")
    assert config.parse_classes("all") == config.FER2013_CLASSES
    assert config.parse_classes(None) == config.DEFAULT_CLASSES


@pytest.mark.parametrize("spec", ["angry", "angry,anger"])
def test_bad_class_specs_are_refused(spec):
    with pytest.raises(ValueError):
        config.parse_classes(spec)


def test_unknown_profile_names_the_choices():
    with pytest.raises(ValueError, match="smoke"):
        config.get_profile("huge")


def test_full_schedules_are_the_seed_schedules():
    full = config.get_profile("full")
    vgg = full.schedule("vgg16")
    assert [(s.epochs, s.learning_rate) for s in vgg] == [(20, 1e-4), (25, 5e-5), (20, 1e-5)]
    assert [(s.trainable, s.epochs) for s in full.schedule("resnet50")] == [("head", 15), ("top:30", 25)]
    assert full.schedule("cnn")[0].epochs == 30


def test_smaller_profiles_shrink_epochs_but_keep_stages():
    smoke, quick = config.get_profile("smoke"), config.get_profile("quick")
    for name in config.MODEL_NAMES:
        full = config.get_profile("full").schedule(name)
        assert len(smoke.schedule(name)) == len(full)
        assert all(s.epochs == 1 for s in smoke.schedule(name))
        assert all(q.epochs <= f.epochs for q, f in zip(quick.schedule(name), full))


def test_write_params_only_rewrites_on_change(tmp_path):
    out = tmp_path / "params.json"
    data = tmp_path / "d"
    data.mkdir()
    args = ["write-params", "--out", str(out), "--profile", "smoke", "--data-dir", str(data)]
    assert config.main(args) == 0
    first = out.stat().st_mtime_ns
    assert config.main(args) == 0
    assert out.stat().st_mtime_ns == first
    (data / "new.png").write_bytes(b"x")
    config.main(args)
    assert json.loads(out.read_text())["data_signature"].startswith("1:")


def test_write_params_refuses_a_missing_explicit_data_dir(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        config.main(["write-params", "--out", str(tmp_path / "p.json"), "--data-dir", str(tmp_path / "nope")])
    assert exc.value.code == 2
    assert "Kaggle" in capsys.readouterr().err


def test_quick_cnn_runs_a_fixed_cosine_budget_and_full_keeps_the_seed_schedule():
    quick_cnn = config.get_profile("quick").for_model("cnn")
    (stage,) = quick_cnn.schedule("cnn")
    assert (stage.epochs, stage.learning_rate, stage.lr_schedule) == (40, 1e-3, "cosine")
    assert quick_cnn.early_stopping_patience >= 10
    # the deeper CNN: 60 epochs, run to the end (chosen on validation, README ablation)
    quick_deep = config.get_profile("quick").for_model("deepcnn")
    (stage,) = quick_deep.schedule("deepcnn")
    assert (stage.epochs, stage.lr_schedule) == (60, "cosine") and quick_deep.early_stopping_patience > 60
    assert config.get_profile("quick").early_stopping_label("deepcnn") == "none (runs to the end)"
    assert config.get_profile("quick").early_stopping_label("cnn") == quick_cnn.early_stopping_patience
    assert all(
        s.lr_schedule == "plateau" for name in config.MODEL_NAMES for s in config.get_profile("full").schedule(name)
    )
    assert config.get_profile("quick").for_model("vgg16").schedule("vgg16")[0].lr_schedule == "plateau"


def test_is_default_data_dir_is_the_one_answer():
    assert config.is_default_data_dir("data/raw/fer2013")
    assert config.is_default_data_dir("./data/raw/fer2013/")
    assert config.is_default_data_dir("/somewhere/checkout/data/raw/fer2013")
    assert not config.is_default_data_dir("data/raw/fer2013x")
    assert not config.is_default_data_dir("xdata/raw/fer2013")
    assert not config.is_default_data_dir("data/raw/fer2013/train")
    assert not config.is_default_data_dir("elsewhere")


def _emolib_imports(path, top_level_only):
    """emolib modules imported by `path` ('from . import x', 'from .x import y', 'import emolib.x')."""
    import ast

    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                found |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
            elif node.module and node.module.split(".")[0] == "emolib":
                rest = node.module.split(".")[1:]
                found |= {rest[0]} if rest else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("emolib.")}
    return found - {"__init__"}


def test_config_is_a_leaf_and_top_level_imports_have_no_cycle():
    from pathlib import Path

    pkg = Path(config.__file__).parent
    modules = {p.stem: p for p in pkg.glob("*.py")}
    # config imports nothing from emolib (its CLI uses runinfo, itself a leaf, for the atomic write)
    assert _emolib_imports(modules["config"], top_level_only=False) <= {"runinfo"}
    assert not _emolib_imports(modules["runinfo"], top_level_only=False)
    graph = {
        name: _emolib_imports(p, top_level_only=True) & set(modules)
        for name, p in modules.items()
        if name != "__init__"
    }
    state = {}

    def visit(name, stack):
        state[name] = "visiting"
        for dep in sorted(graph.get(name, ())):
            if state.get(dep) == "visiting":
                raise AssertionError(f"import cycle: {' -> '.join(stack + [name, dep])}")
            if dep not in state:
                visit(dep, stack + [name])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_profile_modifiers_change_only_what_they_name():
    quick, aux, long = (config.get_profile(n) for n in ("quick", "quick+aux", "quick+long"))
    assert aux.aux_classes and not quick.aux_classes and aux.name == "quick+aux"
    assert aux.for_model("cnn").schedule("cnn") == quick.for_model("cnn").schedule("cnn")
    # 'long' merges into the CNNs' overrides: 60 epochs, the cosine decay and patience kept
    for name in ("cnn", "deepcnn"):
        (stage,) = long.for_model(name).schedule(name)
        assert (stage.epochs, stage.lr_schedule) == (60, "cosine")
        assert long.for_model(name).early_stopping_patience == quick.for_model(name).early_stopping_patience
    assert quick.for_model("cnn").schedule("cnn")[0].epochs == 40  # the base profile is untouched
    assert long.for_model("vgg16") == dataclasses.replace(
        quick.for_model("vgg16"), name="quick+long", description=long.description
    )
    both = config.get_profile("quick+long+fixed").for_model("cnn")
    assert both.schedule("cnn")[0].epochs == 60 and both.early_stopping_patience > 60
    sqrt = config.get_profile("quick+sqrtweights")
    assert (sqrt.class_weight_power, quick.class_weight_power) == (0.5, None)  # None: the task decides
    assert sqrt.for_model("deepcnn").schedule("deepcnn") == quick.for_model("deepcnn").schedule("deepcnn")
    mixup = config.get_profile("quick+mixup")
    assert mixup.for_model("deepcnn").mixup_alpha == 0.2 and quick.for_model("deepcnn").mixup_alpha == 0
    assert mixup.for_model("deepcnn").schedule("deepcnn") == quick.for_model("deepcnn").schedule("deepcnn")
    with pytest.raises(ValueError, match="modifier"):
        config.get_profile("quick+fast")


def test_the_plan_follows_what_the_backbone_starts_from():
    quick, full = config.get_profile("quick"), config.get_profile("full")
    for name in ("mobilenetv2", "resnet50", "vgg16"):
        p = quick.for_model(name)
        plan = p.plan(name, "disjoint")
        # frozen base first, then the whole backbone, each on its own cosine decay, run to the end
        assert [(s.trainable, s.lr_schedule) for s in plan] == [("head", "cosine"), ("all", "cosine")]
        assert plan == config.QUICK_DISJOINT_PLANS[name]
        assert p.early_stopping_patience > sum(s.epochs for s in plan)
        assert p.plan(name, "imagenet") == p.schedule(name)  # ImageNet weights keep the seed's schedule
        assert p.plan(name, "file") == p.schedule(name)
        assert p.plan(name, "none") == p.scratch_schedule(name)
        # the full profile (a GPU) keeps the seed's schedule whatever the weights
        assert full.for_model(name).plan(name, "disjoint") == full.schedule(name)
    # the CNNs' plan does not depend on weights
    for name in config.CUSTOM_MODELS:
        p = quick.for_model(name)
        assert p.plan(name, "disjoint") == p.plan(name, "none") == p.schedule(name)


def test_class_weights_are_tempered_for_all_seven_classes_unless_a_profile_says_otherwise():
    three, seven = ("angry", "sad", "surprise"), config.FER2013_CLASSES
    quick = config.get_profile("quick")
    # chosen on the 7-class validation split (README); subsets keep the balanced rule
    assert config.class_weight_power(quick, seven) == config.SEVEN_CLASS_WEIGHT_POWER == 0.5
    assert config.class_weight_power(quick, three) == 1.0
    assert config.class_weight_power(quick, tuple(reversed(seven))) == 0.5  # the set, not the order
    assert config.class_weight_power(quick, seven[:-1]) == 1.0
    # a modifier overrides the task's default either way
    assert config.class_weight_power(config.get_profile("quick+balancedweights"), seven) == 1.0
    assert config.class_weight_power(config.get_profile("quick+sqrtweights"), three) == 0.5
    assert config.resolve(profile="quick", classes="all").class_weight_power == 0.5
    assert config.resolve(profile="quick", classes="angry,sad,surprise").class_weight_power == 1.0
    assert config.resolve(profile="smoke+balancedweights", classes="all").class_weight_power == 1.0
