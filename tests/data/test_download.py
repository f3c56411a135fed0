"""`make data`: the offline path prints the manual steps; a real FER2013 folder verifies."""

import builtins

from emolib import download


def test_without_kagglehub_prints_manual_steps(tmp_path, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_kagglehub(name, *args, **kwargs):
        if name == "kagglehub":
            raise ImportError("no kagglehub")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_kagglehub)
    assert download.main(["--dest", str(tmp_path / "fer2013")]) == 2
    out = capsys.readouterr().out
    assert "msambare/fer2013" in out and "data/raw/fer2013/train/<class>" in out


def test_without_credentials_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(download, "have_credentials", lambda: False)
    monkeypatch.setitem(__import__("sys").modules, "kagglehub", object())
    assert download.main(["--dest", str(tmp_path / "fer2013")]) == 2
    assert "No Kaggle credentials" in capsys.readouterr().out


def test_verify_rejects_a_folder_that_is_not_fer2013(synthetic_dir):
    problems = download.verify(synthetic_dir)
    assert any("expected 28709" in p for p in problems)


def test_verify_accepts_real_fer2013(real_fer2013):
    assert download.verify(real_fer2013) == []
