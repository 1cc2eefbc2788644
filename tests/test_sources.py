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
    assert [it.key for it in items] == [f"{lab}/{i}.png" for lab in ("cat", "dog") for i in range(3)]
    assert [it.label for it in items] == ["cat"] * 3 + ["dog"] * 3
    assert items[0].id == item_id("cat/0.png") and 0 <= items[0].id < 2 ** 63
    assert src.open(items[4]).size == (6, 6)
    # a file at the top level: no labels with "auto", the first folder with "subfolders"
    Image.new("RGB", (4, 4)).save(root / "top.png")
    assert all(it.label is None for it in FolderSource(root).items())
    assert FolderSource(root, labels="subfolders").items()[0].label == "cat"
    assert all(it.label is None for it in FolderSource(root, labels=None).items())


def test_ids_do_not_depend_on_where_the_folder_lives(tmp_path):
    a = [it.id for it in open_source(make_folder(tmp_path / "a")).items()]
    b = [it.id for it in open_source(make_folder(tmp_path / "elsewhere" / "b")).items()]
    assert a == b and len(set(a)) == len(a)


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
    assert items[0].key == "imgs/cat/0.png"
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
