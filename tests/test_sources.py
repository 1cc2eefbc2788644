"""Image sources: folders, manifests, IDX files; stable ids and deterministic shards."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ingestion.sources import (FolderSource, IdxSource, ManifestSource, item_id, open_source, parse_shard,
                               select_shard)
from milvus_hash import InvalidInputError
from test_idx import write_idx


def make_folder(root, labels=("cat", "dog"), per_label=3):
    for lab in labels:
        (root / lab).mkdir(parents=True)
        for i in range(per_label):
            Image.new("L", (6, 6), color=40 * i).save(root / lab / f"{i}.png")
    return root


def test_folder_labels_from_subfolders_and_stable_keys(tmp_path):
    root = make_folder(tmp_path / "imgs")
    (root / "notes.txt").write_text("not an image")
    src = open_source(root)
    assert isinstance(src, FolderSource)
    items = src.items()
    assert [it.key for it in items] == [f"imgs/{lab}/{i}.png" for lab in ("cat", "dog") for i in range(3)]
    assert [it.label for it in items] == ["cat"] * 3 + ["dog"] * 3
    assert items[0].id == item_id("imgs/cat/0.png") and 0 <= items[0].id < 2 ** 63
    named = open_source(root, name="batch2").items()  # the source's name begins every key
    assert named[0].key == "batch2/cat/0.png" and named[0].id != items[0].id
    for bad in ("", "a/b", "x#1", "..", 7):
        with pytest.raises(InvalidInputError, match="source name: expected"):
            open_source(root, name=bad)
    assert src.open(items[4]).size == (6, 6)
    # a file at the top level: no labels with "auto", the first folder with "subfolders"
    Image.new("RGB", (4, 4)).save(root / "top.png")
    assert all(it.label is None for it in FolderSource(root).items())
    assert FolderSource(root, labels="subfolders").items()[0].label == "cat"
    assert all(it.label is None for it in FolderSource(root, labels=None).items())


def test_ids_do_not_depend_on_where_the_folder_lives(tmp_path):
    a = [it.id for it in open_source(make_folder(tmp_path / "a")).items()]
    moved = [it.id for it in open_source(make_folder(tmp_path / "elsewhere" / "a")).items()]
    assert a == moved and len(set(a)) == len(a)
    other = [it.id for it in open_source(make_folder(tmp_path / "b")).items()]  # another folder: other ids
    assert not set(a) & set(other)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_manifest_with_labels_and_metadata(tmp_path, fmt):
    make_folder(tmp_path / "imgs")
    rows = [{"path": "imgs/cat/0.png", "label": "cat", "camera": "a"},
            {"path": "imgs/dog/1.png", "label": "", "camera": "b"},
            {"path": str(tmp_path / "imgs/dog/2.png"), "label": "dog", "camera": ""}]
    path = tmp_path / f"m.{fmt}"
    if fmt == "csv":
        path.write_text("path,label,camera\n" + "".join(f"{r['path']},{r['label']},{r['camera']}\n" for r in rows))
    else:
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    src = open_source(path)
    assert isinstance(src, ManifestSource)
    items = src.items()
    assert [it.label for it in items] == ["cat", None, "dog"]
    assert [it.metadata for it in items] == [{"camera": "a"}, {"camera": "b"}, {}]
    assert items[0].key == "m/imgs/cat/0.png"  # the manifest's name, then the path it gives
    assert src.open(items[2]).size == (6, 6)


def test_manifest_errors_name_the_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\na.png,x\n")
    with pytest.raises(InvalidInputError, match="'path' column"):
        open_source(bad).items()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"path": "a.png"}\n{oops\n')
    with pytest.raises(InvalidInputError, match="line 2"):
        open_source(bad).items()


def test_idx_source_with_its_labels_file(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", imgs, 0x08)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(7, dtype=np.uint8) % 3, 0x08)
    src = open_source(tmp_path / "train-images-idx3-ubyte.gz")
    assert isinstance(src, IdxSource)
    items = src.items()
    assert [it.key for it in items][:2] == ["train-images-idx3-ubyte#0", "train-images-idx3-ubyte#1"]
    assert [it.label for it in items] == ["0", "1", "2", "0", "1", "2", "0"]
    np.testing.assert_array_equal(np.asarray(src.open(items[5])), imgs[5])


def test_shards_partition_the_items_deterministically(tmp_path):
    items = open_source(make_folder(tmp_path / "imgs", labels=list("abcdefgh"), per_label=5)).items()
    shards = [select_shard(items, (i, 3)) for i in range(3)]
    keys = [it.key for s in shards for it in s]
    assert sorted(keys) == sorted(it.key for it in items) and len(keys) == len(set(keys))
    assert all(s for s in shards)
    assert [it.key for it in select_shard(items, (1, 3))] == [it.key for it in shards[1]]
    assert parse_shard(None) == (0, 1) and parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "-1/2", "1", "a/b", "1/0"):
        with pytest.raises(InvalidInputError, match="shard: expected I/N"):
            parse_shard(bad)


def test_missing_or_unknown_sources(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        open_source(tmp_path / "nope")
    (tmp_path / "x.bin").write_bytes(b"")
    with pytest.raises(InvalidInputError, match="source: expected an image folder"):
        open_source(tmp_path / "x.bin")


# ---- bad files: none fatal, each counted and listed with its reason ----

def _bad_corpus(root):
    """A folder holding every kind of bad file met so far, beside good ones; returns the expected
    outcome per key: "ok" or a fragment of the reason."""
    import os

    rng = np.random.default_rng(0)
    (root / "ok").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8), mode="L").save(root / "ok" / f"{i}.png")
    Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8), mode="L").save(
        os.fsdecode(bytes(root / "ok") + b"/caf\xe9.png"))                       # a name that is not UTF-8
    Image.fromarray(np.full((1, 20_000), 200, np.uint8), mode="L").save(root / "ok" / "line.png")  # 1 x 20,000
    Image.fromarray((np.arange(28 * 28).reshape(28, 28) * 80).astype(np.uint16)).save(root / "ok" / "deep.png")
    Image.fromarray(np.linspace(0, 1, 28 * 28, dtype=np.float32).reshape(28, 28)).save(root / "ok" / "unit.tif")
    bad = root / "bad"
    bad.mkdir()
    Image.fromarray(np.full((28, 28), 5e4, np.float32)).save(bad / "huge-float.tif")
    Image.fromarray(np.full((28, 28), np.nan, np.float32)).save(bad / "nan.tif")
    os.symlink(bad / "gone.png", bad / "broken.png")
    os.symlink(bad / "loop.png", bad / "loop.png")
    os.mkfifo(bad / "pipe.png")
    (bad / "empty.png").write_bytes(b"")
    (bad / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (bad / "folder.png").mkdir()  # a directory with an image extension: not an item
    return {f"corpus/{k}": v for k, v in {
        "ok/0.png": "ok", "ok/1.png": "ok", "ok/2.png": "ok", "ok/caf\\xe9.png": "ok", "ok/line.png": "ok",
        "ok/deep.png": "ok", "ok/unit.tif": "ok", "bad/huge-float.tif": "values 50000 to 50000",
        "bad/nan.tif": "NaN", "bad/broken.png": "broken symbolic link", "bad/loop.png": "cannot be read",
        "bad/pipe.png": "not a regular file (a FIFO)", "bad/empty.png": "empty file",
        "bad/corrupt.png": "UnidentifiedImageError"}.items()}


def test_bad_files_are_counted_and_listed_with_their_reason_and_none_is_fatal(tmp_path):
    from ingestion.pipeline import stream_features
    from milvus_hash.features import get_backbone

    expected_outcome = _bad_corpus(tmp_path / "corpus")
    src = FolderSource(tmp_path / "corpus", labels=None)
    items = src.items()
    assert sorted(it.key for it in items) == sorted(expected_outcome)
    for it in items:
        it.key.encode("utf-8")  # every key is storable text
    got, failed = [], {}
    for its, feats, bad in stream_features(src, items, get_backbone("pixels", weights=None), batch_size=4, workers=2):
        got += [it.key for it in its]
        assert np.isfinite(feats).all()
        failed.update({it.key: reason for it, reason in bad})
    assert sorted(got) == sorted(k for k, v in expected_outcome.items() if v == "ok")
    for key, fragment in expected_outcome.items():
        if fragment != "ok":
            assert fragment in failed[key], (key, failed[key])


def test_wide_deep_and_float_images_are_read_as_the_8_bit_images_they_show(tmp_path):
    from milvus_hash.features.images import MAX_ASPECT, open_image

    _bad_corpus(tmp_path / "c")
    line = open_image(tmp_path / "c" / "ok" / "line.png")
    assert line.size == (MAX_ASPECT, 1) and np.asarray(line).max() == 200  # centre-cropped: bounded work
    deep = np.asarray(open_image(tmp_path / "c" / "ok" / "deep.png"))
    want = np.rint((np.arange(28 * 28).reshape(28, 28) * 80) / 257).astype(np.uint8)
    assert deep.dtype == np.uint8 and np.array_equal(deep, want)  # not clipped to white
    unit = np.asarray(open_image(tmp_path / "c" / "ok" / "unit.tif"))
    assert unit.min() == 0 and unit.max() == 255  # not all black
    square = Image.fromarray(np.arange(60 * 40, dtype=np.uint32).reshape(40, 60).astype(np.uint8), mode="L")
    square.save(tmp_path / "plain.png")
    assert np.array_equal(np.asarray(open_image(tmp_path / "plain.png")), np.asarray(square))  # untouched
