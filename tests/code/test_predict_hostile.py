"""Prediction on hostile file systems and inputs (issue 13): link loops, dangling links,
folders named like images, pipes, unreadable files, odd names, blank images, bad --csv."""

from __future__ import annotations

import csv
import errno
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

keras = pytest.importorskip("keras")

from emolib import checks, cli, images  # noqa: E402
from emolib import predict as P  # noqa: E402
from tests.helpers import CLASSES, face_crop  # noqa: E402

HEADER = P.csv_columns(CLASSES)


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture()
def hostile(tmp_path) -> tuple[Path, dict[str, str]]:
    """A folder of good and hostile entries; expected status (prefix) per image-named entry."""
    d = tmp_path / "photos"
    d.mkdir()
    expect = {}
    Image.fromarray(face_crop(1)).save(d / "good.png")
    expect["good.png"] = "ok"
    os.symlink("b.jpg", d / "a.jpg")
    os.symlink("a.jpg", d / "b.jpg")  # a.jpg -> b.jpg -> a.jpg
    expect["a.jpg"] = expect["b.jpg"] = "unreadable: symbolic link loop"
    os.symlink("self.png", d / "self.png")
    expect["self.png"] = "unreadable: symbolic link loop"
    os.symlink("gone.png", d / "dangling.png")
    expect["dangling.png"] = "unreadable: broken symbolic link"
    os.symlink(".", d / "loopdir")  # a folder link pointing at its own folder: never followed
    (d / "x.jpg").mkdir()  # a folder named like an image: walked as a folder
    Image.fromarray(face_crop(2)).save(d / "x.jpg" / "inner.png")
    expect["x.jpg/inner.png"] = "ok"
    (d / "empty.png").write_bytes(b"")
    expect["empty.png"] = "unreadable: empty file"
    os.mkfifo(d / "pipe.jpg")
    expect["pipe.jpg"] = "unreadable: not a regular file"
    Image.fromarray(face_crop(3)).save(d / "new\nline é.png")
    expect["new\nline é.png"] = "ok"
    Image.fromarray(face_crop(4)).save(os.fsencode(d) + b"/bad-\xff-utf8.png")
    expect["bad-\udcff-utf8.png"] = "ok"
    return d, expect


def test_iter_image_paths_survives_link_loops(hostile):
    d, expect = hostile
    found, skipped = P.iter_image_paths([d])  # used to raise RuntimeError('Symlink loop ...')
    assert sorted(p.relative_to(d).as_posix() for p in found) == sorted(expect)
    assert (d / "loopdir", "link to a folder (not followed)") in skipped
    # Named explicitly, a loop or a dangling link is kept (it gets a row saying why), not 'not found'.
    found, skipped = P.iter_image_paths([d / "a.jpg", d / "dangling.png", d / "missing.png"])
    assert found == [d / "a.jpg", d / "dangling.png"] and skipped == [(d / "missing.png", "not found")]


def test_a_link_to_a_listed_file_is_accounted_for(tmp_path):
    Image.fromarray(face_crop(1)).save(tmp_path / "a.png")
    os.symlink("a.png", tmp_path / "z_alias.png")
    found, skipped = P.iter_image_paths([tmp_path])
    assert found == [tmp_path / "a.png"]
    assert skipped == [(tmp_path / "z_alias.png", f"same file as {tmp_path / 'a.png'} (predicted once)")]


def test_every_hostile_file_gets_one_row(predictor, hostile):
    d, expect = hostile
    found, _ = P.iter_image_paths([d])
    rows = predictor.predict_batch(found, faces="off", progress=False)
    assert len(rows) == len(found)
    by_name = {Path(r.path).relative_to(d).as_posix(): r.status for r in rows}
    for name, status in expect.items():
        assert by_name[name].startswith(status), (name, by_name[name])
    assert predictor.predict(d / "x.jpg")[0].status == "unreadable: is a folder, not an image"


def test_cli_writes_one_row_per_file_despite_loops(capsys, model_dir, hostile, tmp_path):
    d, expect = hostile
    out_csv = tmp_path / "pred.csv"
    code, out, err = run(capsys, "predict", "--model", model_dir, d, "--csv", out_csv, "--faces", "off")
    assert code == 0, err
    rows = read_csv(out_csv)
    assert list(rows[0]) == HEADER and len(rows) == len(expect)
    got = {os.path.relpath(r["path"], d): r["status"] for r in rows}
    want = {name.replace("\udcff", "\\xff"): status for name, status in expect.items()}
    assert sorted(got) == sorted(want)
    for name, status in want.items():
        assert got[name].startswith(status), (name, got[name])
    assert "6 unreadable" in out and "link to a folder (not followed)" in out
    code, out, _ = run(capsys, "predict", "--model", model_dir, d / "new\nline é.png", d / "pipe.jpg")
    assert code == 0 and "new\\nline é.png" in out  # a file name prints on one line


def test_unreadable_file_has_a_clear_reason(predictor, tmp_path, monkeypatch):
    path = tmp_path / "locked.png"
    Image.fromarray(face_crop(1)).save(path)
    # Tests run as root, where chmod 000 does not block reading: make PIL's open fail as it would.
    real_open = Image.open

    def denied(fp, *a, **k):
        if isinstance(fp, (str, os.PathLike)) and Path(fp) == path:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(fp, *a, **k)

    monkeypatch.setattr(Image, "open", denied)
    [r] = predictor.predict(path)
    assert r.status.startswith("unreadable: permission denied"), r.status


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads files whatever their mode")
def test_chmod_000_file_is_unreadable(predictor, tmp_path):
    path = tmp_path / "locked.png"
    Image.fromarray(face_crop(1)).save(path)
    path.chmod(0)
    try:
        [r] = predictor.predict(path)
    finally:
        path.chmod(0o644)
    assert r.status.startswith("unreadable: permission denied")


# -- --csv that cannot be written: a one-line error before any prediction work ---------------
@pytest.mark.parametrize("case", ["existing_dir", "parent_is_file", "read_only"])
def test_bad_csv_target_fails_fast(capsys, tmp_path, monkeypatch, case):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(face_crop(1)).save(photos / "a.png")
    if case == "existing_dir":
        target = tmp_path / "out"
        target.mkdir()
        expected = "is a folder"
    elif case == "parent_is_file":
        (tmp_path / "file").write_text("x")
        target = tmp_path / "file" / "sub" / "p.csv"
        expected = "is not a folder"
    else:  # root ignores permissions: make creating files in the folder fail as on a read-only disk
        target = tmp_path / "ro" / "p.csv"
        (tmp_path / "ro").mkdir()

        def read_only(*a, **k):
            raise OSError(errno.EROFS, "Read-only file system")

        monkeypatch.setattr("tempfile.mkstemp", read_only)
        expected = "cannot write in"
    before = sorted(tmp_path.rglob("*"))
    # A model that does not exist: the --csv check must come first, before loading or predicting.
    code, out, err = run(capsys, "predict", "--model", tmp_path / "no-model", photos, "--csv", target)
    assert code == 1 and out == ""
    assert err.startswith("emolib predict: error: --csv ") and expected in err and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


def test_csv_in_a_missing_folder_is_still_created(capsys, model_dir, tmp_path):
    Image.fromarray(face_crop(1)).save(tmp_path / "a.png")
    target = tmp_path / "new" / "deeper" / "p.csv"
    code, _, err = run(capsys, "predict", "--model", model_dir, tmp_path / "a.png", "--csv", target)
    assert code == 0, err
    assert len(read_csv(target)) == 1


# -- blank images ------------------------------------------------------------------------------
def test_blank_threshold_is_shared_with_the_data_checks():
    assert checks.BLANK_MAX_STD is images.BLANK_MAX_STD
    assert images.near_blank(np.full((48, 48), 255, np.uint8))
    assert not images.near_blank(face_crop(1))
    stack = np.stack([np.full((48, 48), 7, np.uint8), face_crop(2)])
    assert images.near_blank(stack).tolist() == [True, False]


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    "make",
    [
        lambda: _png(Image.new("L", (64, 64), 255)),  # a blank white 64x64 image
        lambda: _png(Image.new("RGBA", (64, 64), (0, 0, 0, 0))),  # fully transparent
        lambda: _png(Image.new("RGB", (500, 400), (30, 30, 30))),  # a blank photo, used whole
        lambda: np.clip(128 + np.random.default_rng(0).normal(0, 2, (48, 48)), 0, 255).astype(np.uint8),  # std ~2
    ],
    ids=["white", "transparent", "dark_photo_whole", "faint_noise"],
)
def test_blank_images_get_their_own_status(predictor, make):
    src = make()
    [r] = predictor.predict(src, faces="off")
    assert r.status == "blank" and r.emotion is None and r.confidence is None and r.probabilities == {}
    [b] = predictor.predict_batch([src], faces="off", progress=False)
    assert b.status == "blank"
    [auto] = predictor.predict(src)  # faces='auto': a small square image is used whole, a photo searched
    assert auto.status in ("blank", "no_face")
    [forced] = predictor.predict(src, faces="off", detect_blank=False)  # opt out: classified anyway
    assert forced.ok


def test_cli_counts_blank_files(capsys, model_dir, tmp_path):
    Image.new("L", (64, 64), 255).save(tmp_path / "white.png")
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    Image.fromarray(face_crop(1)).save(tmp_path / "face.png")
    code, out, err = run(capsys, "predict", "--model", model_dir, tmp_path, "--csv", tmp_path / "p.csv")
    assert code == 0, err
    assert "1 face(s) in 1 file(s), 0 without a face, 2 blank, 0 unreadable" in out
    statuses = {Path(r["path"]).name: (r["status"], r["emotion"]) for r in read_csv(tmp_path / "p.csv")}
    assert statuses["white.png"] == statuses["clear.png"] == ("blank", "")
    # Only blank files: processed (exit 0), not 'every file was unreadable'.
    code, out, _ = run(capsys, "predict", "--model", model_dir, tmp_path / "white.png")
    assert code == 0 and "blank" in out


def test_carriage_return_in_a_file_name_keeps_its_csv_row(capsys, model_dir, tmp_path):
    """csv.writer with '\\n' line ends left a '\\r' unquoted, so readers split the row (found by fuzzing)."""
    Image.fromarray(face_crop(1)).save(tmp_path / "a\rb.png")
    code, _, err = run(capsys, "predict", "--model", model_dir, tmp_path / "a\rb.png", "--csv", tmp_path / "p.csv")
    assert code == 0, err
    [row] = read_csv(tmp_path / "p.csv")
    assert row["path"] == str(tmp_path / "a\rb.png") and row["status"] == "ok"
