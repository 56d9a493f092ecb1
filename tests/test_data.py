import gzip
import hashlib
import io
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from convnets import config
from convnets import data as datamod
from convnets.errors import ConvnetsError

CIFAR_CLASSES = list(datamod.get_dataset("cifar10").classes)


def test_mnist_idx_loads_and_is_cached(data_dir, monkeypatch):
    ds = datamod.load("mnist", data_dir)
    assert ds.copy == "official"
    assert ds.train.images.shape == (600, 1, 28, 28) and ds.train.images.dtype == torch.uint8
    assert ds.test.images.shape == (200, 1, 28, 28)
    assert sorted(ds.train.labels.unique().tolist()) == list(range(10))

    monkeypatch.setitem(datamod._DECODERS, "mnist-idx", lambda *a: pytest.fail("decoded twice"))
    again = datamod.load("mnist", data_dir)
    assert torch.equal(again.train.images, ds.train.images)


def test_the_test_split_alone_is_decoded_once_and_is_the_whole_datasets(data_dir, tmp_path, monkeypatch):
    decoded = []
    real = datamod.encoded_images
    monkeypatch.setattr(datamod, "encoded_images", lambda source, split: decoded.append(split) or real(source, split))
    test, copy = datamod.load_test("cifar10", data_dir, cache_dir=tmp_path / "a")
    assert decoded == ["test"] and copy == "jpeg" and test.images.shape == (100, 3, 32, 32)
    assert datamod.load_test("cifar10", data_dir, cache_dir=tmp_path / "a")[0].labels.equal(test.labels)
    assert decoded == ["test"]  # the second time from its cache
    whole = datamod.load("cifar10", data_dir, cache_dir=tmp_path / "b")
    assert torch.equal(whole.test.images, test.images) and torch.equal(whole.test.labels, test.labels)
    decoded.clear()
    assert torch.equal(datamod.load_test("cifar10", data_dir, cache_dir=tmp_path / "b")[0].images, test.images)
    assert decoded == []  # where a training cached the whole dataset, its test split is read from there
    with pytest.raises(ConvnetsError, match="is the jpeg copy, but the run is on the official copy"):
        datamod.load_test_copy("cifar10", "official", data_dir)


def test_test_images_decode_only_the_images_taken(data_dir, monkeypatch):
    decoded = []
    real = datamod.decode_images
    monkeypatch.setattr(datamod, "decode_images", lambda items: decoded.append(len(items)) or real(items))
    lazy = datamod.split_images("cifar10", "test", data_dir)
    assert decoded == [] and lazy.copy == "jpeg" and len(lazy) == 100
    test, _ = datamod.load_test("cifar10", data_dir)  # decodes the split (and caches it) for the comparison
    assert np.array_equal(lazy.labels, test.labels.numpy())
    decoded.clear()
    chosen = [97, 3, 3, 50]
    assert np.array_equal(lazy.take(chosen), test.images.numpy()[chosen])
    assert decoded == [4]  # the four images asked for, not the split's hundred
    assert lazy.take([]).shape == (0, 3, 32, 32)

    cached = datamod.split_images("cifar10", "test", data_dir)  # the cache load_test wrote: nothing to decode
    assert np.array_equal(cached.take(chosen), test.images.numpy()[chosen]) and decoded == [4]
    mnist = datamod.split_images("mnist", "test", data_dir)
    assert mnist.take([0, 1]).shape == (2, 1, 28, 28) and mnist.copy == "official"


def test_test_images_say_which_predictions_they_do_not_belong_to(data_dir):
    images = datamod.split_images("cifar10", "test", data_dir)
    assert images.mismatch("cifar10", "jpeg", images.labels) == ""
    assert "are the JPEG copy files, but these runs were evaluated on the official files" in images.mismatch(
        "cifar10", "official", images.labels)
    assert "is not the one these runs were evaluated on" in images.mismatch("cifar10", "jpeg", images.labels[::-1])
    assert "is not the one" in images.mismatch("cifar10", "jpeg", images.labels[:10])


def test_mnist_md5_mismatch_is_named(data_dir, monkeypatch):
    monkeypatch.setitem(datamod.MNIST_MD5, "t10k-labels-idx1-ubyte.gz", "0" * 32)
    with pytest.raises(ConvnetsError, match="t10k-labels-idx1-ubyte.gz is corrupted \\(md5 mismatch\\)"):
        datamod.load("mnist", data_dir)


def test_truncated_idx_is_reported(tmp_path, data_dir, monkeypatch):
    root = tmp_path / "d"
    shutil.copytree(data_dir / "MNIST", root / "MNIST")
    path = root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    blob = gzip_truncate(path.read_bytes())
    path.write_bytes(blob)
    monkeypatch.setitem(datamod.MNIST_MD5, path.name, hashlib.md5(blob).hexdigest())
    with pytest.raises(ConvnetsError, match="truncated"):
        datamod.load("mnist", root)


def gzip_truncate(blob: bytes) -> bytes:
    return gzip.compress(gzip.decompress(blob)[:-100])


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_missing_data_offline_names_files_and_folder(tmp_path, dataset):
    with pytest.raises(ConvnetsError) as e:
        datamod.load(dataset, tmp_path / "empty")
    msg = str(e.value)
    assert str(tmp_path / "empty") in msg and "CONVNETS_OFFLINE" in msg
    assert ("train-images-idx3-ubyte.gz" if dataset == "mnist" else "data_batch_1") in msg


def test_cifar_folder_and_pack_agree(data_dir, tmp_path):
    folder = datamod.load("cifar10", data_dir)
    assert folder.copy == "jpeg" and folder.train.images.shape == (400, 3, 32, 32)
    assert folder.train.labels.bincount().tolist() == [40] * 10

    # The one-file pack holds the same JPEG bytes in ImageFolder order.
    pack = {}
    for split in ("train", "test"):
        files = sorted((data_dir / datamod.JPEG_DIR / split).rglob("*.jpg"))
        blobs = [f.read_bytes() for f in files]
        pack[f"{split}_jpeg"] = np.frombuffer(b"".join(blobs), np.uint8)
        pack[f"{split}_off"] = np.cumsum([0] + [len(b) for b in blobs])
        pack[f"{split}_y"] = np.array([CIFAR_CLASSES.index(f.parent.name) for f in files], np.uint8)
    np.savez(tmp_path / datamod.JPEG_PACK, **pack)
    packed = datamod.load("cifar10", tmp_path)
    assert torch.equal(packed.train.images, folder.train.images)
    assert torch.equal(packed.test.labels, folder.test.labels)

    # The scans archive stores the files' common header once; header + scan is each file again.
    blobs = {s: [f.read_bytes() for f in sorted((data_dir / datamod.JPEG_DIR / s).rglob("*.jpg"))]
             for s in ("train", "test")}
    header = os.path.commonprefix(blobs["train"] + blobs["test"])
    assert len(header) > 300  # quantisation and Huffman tables: the same for every file of one quality
    scans = {"header": np.frombuffer(header, np.uint8)}
    for split, files in blobs.items():
        scans[f"{split}_scan"] = np.frombuffer(b"".join(b[len(header):] for b in files), np.uint8)
        scans[f"{split}_off"] = np.cumsum([0] + [len(b) - len(header) for b in files])
        scans[f"{split}_y"] = pack[f"{split}_y"]
    only_scans = tmp_path / "scans"
    only_scans.mkdir()
    np.savez(only_scans / datamod.JPEG_SCANS, **scans)
    assert datamod.find_source("cifar10", only_scans).kind == "cifar-scans"
    scanned = datamod.load("cifar10", only_scans)
    assert scanned.copy == "jpeg"
    assert torch.equal(scanned.train.images, folder.train.images)
    assert torch.equal(scanned.test.images, folder.test.images)
    assert torch.equal(scanned.test.labels, folder.test.labels)


def test_a_damaged_scans_archive_is_named(tmp_path):
    np.savez(tmp_path / datamod.JPEG_SCANS, header=np.zeros(3, np.uint8), train_scan=np.zeros(5, np.uint8),
             train_off=np.array([0, 9]), train_y=np.zeros(1, np.uint8))
    with pytest.raises(ConvnetsError, match="not a readable CIFAR-10 pack"):
        datamod.load("cifar10", tmp_path)


def test_wrong_folder_layout_is_named(tmp_path):
    (tmp_path / datamod.JPEG_DIR / "train" / "cats").mkdir(parents=True)
    with pytest.raises(ConvnetsError, match="one folder per CIFAR-10 class"):
        datamod.load("cifar10", tmp_path)


def test_corrupt_image_is_named(data_dir, tmp_path):
    root = tmp_path / "d"
    shutil.copytree(data_dir / datamod.JPEG_DIR, root / datamod.JPEG_DIR)
    bad = root / datamod.JPEG_DIR / "test" / "dog" / "0003.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ConvnetsError, match="0003.jpg is not a readable image"):
        datamod.load("cifar10", root)


def test_wrong_image_size_is_named(data_dir, tmp_path):
    root = tmp_path / "d"
    shutil.copytree(data_dir / datamod.JPEG_DIR, root / datamod.JPEG_DIR)
    buf = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buf, "PNG")
    (root / datamod.JPEG_DIR / "train" / "cat" / "0001.jpg").write_bytes(buf.getvalue())
    with pytest.raises(ConvnetsError, match="64×64, CIFAR-10 images are 32×32"):
        datamod.load("cifar10", root)


def test_batches_cover_the_split_once_and_are_reproducible(data_dir):
    split = datamod.load("mnist", data_dir).train
    labels = [y for _, y in datamod.batches(split, 64, shuffle=True, generator=torch.Generator().manual_seed(1))]
    assert sorted(torch.cat(labels).tolist()) == sorted(split.labels.tolist())
    again = [y for _, y in datamod.batches(split, 64, shuffle=True, generator=torch.Generator().manual_seed(1))]
    assert all(torch.equal(a, b) for a, b in zip(labels, again))


def test_every_augmentation_offered_is_implemented():
    assert set(datamod.AUGMENTS) | {"none"} == set(config.AUGMENTATIONS)


@pytest.mark.parametrize("kind, pad, variants", [("crop-flip", 4, 9 * 9 * 2), ("flip", 0, 2), ("shift", 2, 5 * 5)])
def test_augmentations_translate_and_mirror_as_named(kind, pad, variants):
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.uint8).reshape(2, 3, 8, 8)
    out = datamod._augment(x, kind, datamod._draw(kind, 2, torch.Generator().manual_seed(0)))
    assert out.shape == x.shape and out.dtype == torch.uint8
    for i in range(2):  # each output is a shifted (zero-padded) window of its input, mirrored only if allowed
        padded = torch.nn.functional.pad(x[i], (pad, pad, pad, pad))
        windows = [padded[:, r : r + 8, c : c + 8] for r in range(2 * pad + 1) for c in range(2 * pad + 1)]
        mirrored = [w.flip(2) for w in windows] if datamod.AUGMENTS[kind][1] else []
        assert any(torch.equal(out[i], w) for w in windows + mirrored)
    draws = datamod._draw(kind, 3000, torch.Generator().manual_seed(0))
    many = datamod._augment(x[:1].repeat(3000, 1, 1, 1), kind, draws)
    assert len({m.numpy().tobytes() for m in many}) == variants  # every shift (and mirror) occurs, nothing else


def test_channel_and_pixel_stats(data_dir):
    split = datamod.load("cifar10", data_dir).train
    mean, std = datamod.channel_stats(split)
    assert mean.shape == (3,) and torch.allclose(mean, split.images.float().mean((0, 2, 3)), rtol=1e-4)
    pmean, pstd = datamod.pixel_stats(split)
    assert pmean.shape == (3, 32, 32) and (pstd >= 1).all()


def test_a_data_folder_is_checked_before_a_job_is_launched(data_dir, tmp_path, monkeypatch):
    assert datamod.check_data_dir("cifar10", data_dir).kind == "cifar-folder"
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ConvnetsError, match="is a file, not a folder"):
        datamod.check_data_dir("mnist", tmp_path / "file")
    with pytest.raises(ConvnetsError, match=r"typo does not exist: .*\(downloads are off: CONVNETS_OFFLINE\)"):
        datamod.check_data_dir("mnist", tmp_path / "typo")
    with pytest.raises(ConvnetsError, match="mnist is not in .*; downloads are off"):
        datamod.check_data_dir("mnist", tmp_path)  # exists, holds nothing
    with pytest.raises(ConvnetsError, match="mnist is not in .*; downloads are off"):
        datamod.check_data_dir("mnist")  # the default folder, missing

    monkeypatch.delenv("CONVNETS_OFFLINE")  # online: a download may fill an existing folder, or create the default
    assert datamod.check_data_dir("mnist", tmp_path).kind == "download"
    assert datamod.check_data_dir("mnist").kind == "download"
    with pytest.raises(ConvnetsError, match="typo does not exist: .*, or create this one to download it into"):
        datamod.check_data_dir("mnist", tmp_path / "typo")  # a mistyped path does not start a download
