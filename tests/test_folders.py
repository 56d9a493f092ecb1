"""A user's own image folder as a dataset, and torchvision's standard small datasets, read from small files in their
real on-disk formats: the check of every bad folder (one message, nothing written), the fingerprint (an edited folder
is a new dataset, a moved one the same), the split, and the whole command-line loop on a folder."""

import gzip
import hashlib
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import colour_image, digit_images
from PIL import Image

from convnets import data as datamod
from convnets import folders
from convnets.cli import main
from convnets.datasets import dataset_names, get_dataset, records_dir
from convnets.errors import ConvnetsError
from convnets.models import default_recipe, get_model, models_for

CLASSES = ["cat", "dog", "owl"]


def write_folder(root: Path, per_class: int = 20, classes=CLASSES, grey: bool = False, side: int = 40,
                 split: bool = False) -> Path:
    """Learnable images of a few classes, as PNG files: PATH/<class>/* or PATH/{train,test}/<class>/*."""
    rng = np.random.default_rng(len(classes) + per_class)
    for label, name in enumerate(classes):
        for i in range(per_class):
            folder = root / ("test" if i % 5 == 0 else "train") / name if split else root / name
            folder.mkdir(parents=True, exist_ok=True)
            pixels = np.asarray(Image.fromarray(colour_image(label, rng)).resize((side, side)))
            image = Image.fromarray(pixels).convert("L") if grey else Image.fromarray(pixels)
            image.save(folder / f"{i:03d}.png")
    return root


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_folder_is_checked_split_and_named_by_its_content(tmp_path):
    root = write_folder(tmp_path / "pets")
    check = folders.check_folder(root)
    assert check.layout == "one folder, split here" and check.classes == CLASSES
    assert check.counts == {"train": [16, 16, 16], "test": [4, 4, 4]}  # 20 % of every class, stratified
    assert check.channels == 3 and check.size == 32 and check.median_side == 40
    again = folders.check_folder(root)
    assert [f for f, _ in again.files["test"]] == [f for f, _ in check.files["test"]]  # a fixed seed
    moved = tmp_path / "elsewhere" / "renamed"
    shutil.copytree(root, moved)
    assert folders.check_folder(moved).name == check.name  # the content, not the path
    (moved / "cat" / "000.png").write_bytes((root / "dog" / "001.png").read_bytes())
    assert folders.check_folder(moved).name != check.name  # an edited folder is another dataset
    assert folders.check_folder(root, 64).name.endswith("-64") and folders.check_folder(root, 64).size == 64


def test_greyscale_folders_are_28_pixels_and_mixed_ones_rgb(tmp_path):
    grey = folders.check_folder(write_folder(tmp_path / "grey", grey=True))
    assert grey.channels == 1 and grey.size == 28 and grey.converted == 0
    mixed = write_folder(tmp_path / "mixed")
    Image.open(mixed / "owl" / "003.png").convert("L").save(mixed / "owl" / "003.png")
    check = folders.check_folder(mixed)
    assert check.channels == 3 and check.converted == 1
    assert "1 greyscale image(s) converted to RGB" in check.notes[0]
    spec = folders.register(mixed)
    data = datamod.load(spec.name)
    assert tuple(data.train.images.shape[1:]) == (3, 32, 32) and data.classes == CLASSES


def bad_folders(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Every folder the check refuses, and the start of what it says."""
    cases = {}
    cases["missing"] = (tmp_path / "nowhere", "there is no folder at")
    (tmp_path / "a-file.png").write_bytes(b"x")
    cases["file"] = (tmp_path / "a-file.png", "is a file, not a folder of class folders")
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "flat" / "loose.png")
    cases["no classes"] = (tmp_path / "flat", "holds no class folders")
    cases["one class"] = (write_folder(tmp_path / "one", classes=["cat"]), "has one class (cat)")
    empty = write_folder(tmp_path / "empty")
    shutil.rmtree(empty / "owl")
    (empty / "owl").mkdir()
    cases["empty class"] = (empty, "the class folder owl of")
    few = write_folder(tmp_path / "few")
    for f in sorted((few / "dog").iterdir())[1:]:
        f.unlink()
    cases["one image in a class"] = (few, "every class needs at least 2 readable images; dog (1)")
    corrupt = write_folder(tmp_path / "corrupt")
    for i in range(4):  # 4 of 60 files: more than 5 %
        (corrupt / "cat" / f"bad{i}.png").write_bytes(b"not a png at all")
    cases["too many unreadable"] = (corrupt, "4 of the 64 files")
    pair = write_folder(tmp_path / "pair", split=True)
    shutil.rmtree(pair / "test" / "owl")
    cases["train/test differ"] = (pair, "the train and test folders of")
    many = tmp_path / "many"
    for c in range(folders.MAX_CLASSES + 1):
        (many / f"c{c:04d}").mkdir(parents=True)
    cases["too many classes"] = (many, "1001 class folders; at most 1000")
    return cases


def test_every_bad_folder_is_one_error_and_nothing_is_written(tmp_path, home, capsys):
    for case, (path, message) in bad_folders(tmp_path).items():
        with pytest.raises(ConvnetsError, match=None) as e:
            folders.check_folder(path)
        assert message in str(e.value), (case, str(e.value))
        code, out, err = cli(capsys, "train", "--model", "lenet5", "--dataset", str(path), "--epochs", "1")
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], case
    assert not (home / "runs").exists() and not records_dir(home).exists()


def test_a_few_unreadable_files_are_skipped_and_listed(tmp_path):
    root = write_folder(tmp_path / "some-bad", per_class=30)
    (root / "dog" / "notes.txt").write_text("my notes")
    (root / "owl" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    check = folders.check_folder(root)
    assert sorted(f for f, _ in check.skipped) == ["dog/notes.txt", "owl/broken.jpg"]
    assert all(why.startswith("not a readable image") for _, why in check.skipped)
    assert check.notes == ["2 unreadable file(s) skipped"] and sum(check.counts["train"] + check.counts["test"]) == 90


def test_every_registry_net_builds_for_the_folder_or_says_why(tmp_path):
    spec = folders.register(write_folder(tmp_path / "small", grey=True))  # greyscale 28x28, three classes
    takes = [s.name for s in models_for(spec.name)]
    assert "lenet5" in takes and "resnet20" in takes and "vgg16" not in takes
    net = get_model("resnet20").build(spec.name)
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 3)
    with pytest.raises(ConvnetsError, match=r"vgg16 cannot take small \(your folder\)'s 28×28 images"):
        default_recipe("vgg16", spec.name)
    assert default_recipe("resnet20", spec.name).augment == "crop-flip"  # a folder is not digits: mirrored
    assert default_recipe("resnet20", "kmnist").augment == "shift"  # digits are never mirrored


@pytest.mark.parametrize("layout", ["one folder", "train/test"])
def test_the_command_line_loop_on_a_folder(tmp_path, home, capsys, layout):
    root = write_folder(tmp_path / "pets", per_class=30, split=layout == "train/test")
    train = ["train", "--dataset", str(root), "--epochs", "2", "--batch-size", "16", "--json"]
    code, out, err = cli(capsys, *train, "--model", "lenet5")
    assert code == 0, err
    a = json.loads(out.splitlines()[-1])
    assert a["dataset"].startswith("folder-") and a["folder"] == str(root) and a["image_size"] == 32
    assert a["fingerprint"] and a["split"]["train"] + a["split"]["test"] == 90 and a["data_copy"] == "folder"
    assert f"--dataset {root} " in a["command"] and a["command"].endswith("--seed 0 --image-size 32")
    assert a["split"].get("test_share") == (0.2 if layout == "one folder" else None)
    assert a["test_accuracy"] > 1 / 3  # it learned something
    _, out, _ = cli(capsys, *train, "--model", "ref_lenet")
    b = json.loads(out.splitlines()[-1])
    code, out, _ = cli(capsys, "runs", "--json")
    listed = {r["run_id"]: r for r in json.loads(out)}
    assert listed[a["run_id"]]["dataset_label"] == "pets (your folder)"
    assert listed[a["run_id"]]["fingerprint"] == a["fingerprint"]

    code, out, _ = cli(capsys, "eval", a["run_id"], "--json")
    assert code == 0 and json.loads(out)["test_accuracy"] == pytest.approx(a["test_accuracy"])
    code, out, _ = cli(capsys, "compare", a["run_id"], b["run_id"], "--json")
    assert code == 0 and sum(json.loads(out)["table"].values()) == json.loads(out)["images"] == 18
    code, out, err = cli(capsys, "robustness", a["run_id"], "--json")
    assert code == 0, err
    photo = next((root / "owl" if layout == "one folder" else root / "train" / "owl").iterdir())
    code, out, err = cli(capsys, "predict", str(photo), "--dataset", str(root), "--include-chance", "--json")
    answers = json.loads(out)[0]["predictions"]
    assert code == 0 and {p["run_id"] for p in answers} == {a["run_id"], b["run_id"]}
    assert all(len(p["probabilities"]) == 3 for p in answers)
    code, out, err = cli(capsys, "explain", str(photo), "--dataset", a["dataset"], "--run", a["run_id"],
                         b["run_id"], "--json")
    maps = json.loads(out)[0]["explanations"]
    assert code == 0 and len(maps) == 2 and np.asarray(maps[0]["map"]).shape == (32, 32)
    assert a["dataset"] in dataset_names(home)


def test_a_folder_changed_since_it_was_checked_is_refused(tmp_path):
    root = write_folder(tmp_path / "pets")
    spec = folders.register(root)
    (root / "cat" / "000.png").unlink()
    with pytest.raises(ConvnetsError, match="changed since it was checked"):
        datamod.load(spec.name, cache_dir=tmp_path / "no-cache")


# --- torchvision's standard small datasets, from their real file formats ------------------------------------


def idx_file(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


@pytest.mark.parametrize("dataset, folder", [("fashion_mnist", "FashionMNIST"), ("kmnist", "KMNIST")])
def test_the_idx_datasets_read_from_torchvisions_folders(tmp_path, dataset, folder):
    rng = np.random.default_rng(0)
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    for split, n in (("train", 50), ("test", 20)):
        labels = np.arange(n) % 10
        for stem, array in zip(datamod.MNIST_FILES[split], (digit_images(labels, rng), labels)):
            (raw / f"{stem}.gz").write_bytes(idx_file(array))
    data = datamod.load(dataset, tmp_path)
    assert tuple(data.train.images.shape) == (50, 1, 28, 28) and data.classes == list(get_dataset(dataset).classes)
    assert data.test.labels.tolist() == (np.arange(20) % 10).tolist() and data.copy == "official"


def test_cifar100_reads_its_python_pickles_with_their_fine_labels(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    folder = tmp_path / datamod.CIFAR100_DIR
    folder.mkdir()
    sums = {}
    for name, n in (("train", 200), ("test", 100)):
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "fine_labels": list(np.arange(n) % 100),
                 "coarse_labels": [0] * n}
        blob = pickle.dumps(entry)
        (folder / name).write_bytes(blob)
        sums[name] = hashlib.md5(blob).hexdigest()
    monkeypatch.setattr(datamod, "CIFAR100_MD5", sums)
    data = datamod.load("cifar100", tmp_path)
    assert tuple(data.train.images.shape) == (200, 3, 32, 32) and int(data.train.labels.max()) == 99
    assert len(data.classes) == 100 and data.classes[:2] == ["apple", "aquarium_fish"]
    (folder / "test").write_bytes(b"tampered")
    with pytest.raises(ConvnetsError, match="md5 mismatch"):
        datamod.load("cifar100", tmp_path, cache_dir=tmp_path / "fresh")


def test_svhn_reads_its_matlab_files_with_zero_labelled_ten(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("test", 10)):
        digits = np.arange(n) % 10
        savemat(tmp_path / datamod.SVHN_FILES[split], {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                                                       "y": np.where(digits == 0, 10, digits)[:, None]})
    data = datamod.load("svhn", tmp_path)
    assert tuple(data.train.images.shape) == (30, 3, 32, 32)
    assert data.test.labels.tolist() == (np.arange(10) % 10).tolist()
    (tmp_path / datamod.SVHN_FILES["test"]).write_bytes(b"not matlab")
    with pytest.raises(ConvnetsError, match="not a readable SVHN file"):
        datamod.load("svhn", tmp_path, cache_dir=tmp_path / "fresh")
