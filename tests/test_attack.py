"""Adversarial attacks: perturbations within ε on whole grey levels, the accuracy against ε a run keeps, the CLI, and
one image attacked for Inside the net."""

import json
import math

import numpy as np
import pytest
import torch

from convnets import data as datamod
from convnets.attack import EPS, METHODS, attack_of, perturb, perturbation_picture
from convnets.cli import main
from convnets.config import RunConfig
from convnets.errors import ConvnetsError
from convnets.evaluate import predict_probs
from convnets.explain import Explainer, attacked
from convnets.models import get_model
from convnets.robustness import subset
from convnets.store import RunStore
from convnets.train import train_run

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small_net(tmp_path_factory, synthetic_root) -> tuple[RunStore, str]:
    """LeNet-5 trained for three short epochs on the synthetic colour photos (2 s): right on nearly every test image,
    and, like any net not trained against attacks, easily fooled."""
    home = tmp_path_factory.mktemp("attack-home")
    store = RunStore(home, zoo="")
    recipe = get_model("lenet5").recipes["cifar10"].replace(epochs=3, batch_size=32)
    config = RunConfig("lenet5", "cifar10", recipe, data_copy=datamod.find_source("cifar10", synthetic_root[0]).copy)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONVNETS_HOME", str(home))
        run, _ = train_run(config, store=store, data_dir=str(synthetic_root[0]), device="cpu")
    return store, run.run_id


@pytest.fixture
def run(small_net, monkeypatch):
    store, run_id = small_net
    monkeypatch.setenv("CONVNETS_HOME", str(store.home))
    for name in METHODS:
        (store.require(run_id).path / f"attack-{name}.json").unlink(missing_ok=True)
    return store.require(run_id)


def test_the_accuracy_falls_with_eps_from_the_clean_figure_and_pgd_breaks_the_net(run, data_dir):
    fgsm = attack_of(run, "fgsm", EPS, str(data_dir), "cpu")
    test = datamod.load_copy("cifar10", run.config.data_copy, str(data_dir)).test
    images = subset(test)
    probs = predict_probs(run.load_model(), images, torch.device("cpu"))  # fp32 here (conftest)
    clean = (probs.argmax(1) == images.labels).float().mean().item()
    assert fgsm["eps"] == list(EPS) and fgsm["subset"] == len(images) == 100
    assert fgsm["accuracy"][0] == pytest.approx(clean, abs=1e-6) == run.robustness()["clean_accuracy"]
    noise = 0.5 / math.sqrt(fgsm["subset"])  # one standard error of an accuracy near 50 %, the largest
    assert all(b <= a + noise for a, b in zip(fgsm["accuracy"], fgsm["accuracy"][1:])), fgsm["accuracy"]
    assert fgsm["accuracy"][-1] < clean - 0.2, fgsm["accuracy"]

    pgd = attack_of(run, "pgd", [8], str(data_dir), "cpu")
    assert pgd["steps"] == 10 and pgd["step_size"] == 0.25 and pgd["source"].endswith("fp32")
    assert pgd["accuracy"][0] < fgsm["accuracy"][-1] and pgd["accuracy"][0] < clean / 2, (pgd, fgsm)
    assert run.attack("fgsm")["eps"] == list(EPS) and run.attack("pgd")["accuracy"] == pgd["accuracy"]


def test_stored_figures_are_reused_and_new_sizes_added_beside_them(run, data_dir, tmp_path):
    first = attack_of(run, "fgsm", [0, 4], str(data_dir), "cpu")
    again = attack_of(run, "fgsm", [4, 0], str(tmp_path / "no-data"), "cpu")  # stored: no test split needed
    assert again["eps"] == [4, 0] and again["accuracy"] == first["accuracy"][::-1]
    more = attack_of(run, "fgsm", [2], str(data_dir), "cpu")
    assert run.attack("fgsm")["eps"] == [0, 2, 4] and run.attack("fgsm")["accuracy"][1] == more["accuracy"][0]
    with pytest.raises(ConvnetsError, match="has no stored FGSM figures, and computing them needs its test split"):
        attack_of(run, "fgsm", [1], str(tmp_path / "no-data"), "cpu")


def test_perturbations_stay_within_eps_on_whole_grey_levels(run, data_dir):
    model = run.load_model()
    test = datamod.load_copy("cifar10", run.config.data_copy, str(data_dir)).test
    x, y = test.images[:16].float(), test.labels[:16]
    assert torch.equal(perturb(model, x, y, "fgsm", 0), x)
    for method in METHODS:
        for eps in (1, 8):
            out = perturb(model, x, y, method, eps)
            change = (out - x).abs()
            assert torch.equal(out, out.round()) and out.min() >= 0 and out.max() <= 255
            assert change.max() == eps, (method, eps)
    moved = (perturb(model, x, y, "fgsm", 4) - x).abs()
    assert ((moved == 4) | (x == 0) | (x == 255)).float().mean() > 0.9  # FGSM moves nearly every pixel all the way
    assert not torch.equal(perturb(model, x, y, "pgd", 8), perturb(model, x, y, "fgsm", 8))


def test_the_cli_reports_accuracy_per_eps_and_refuses_bad_requests(run, data_dir, capsys):
    code = main(["attack", run.run_id, "--eps", "0", "2", "--data-dir", str(data_dir), "--device", "cpu", "--json"])
    out = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert code == 0 and out["run_id"] == run.run_id and out["method"] == "fgsm" and out["eps"] == [0, 2]
    assert len(out["accuracy"]) == 2 and out["accuracy"] == run.attack("fgsm")["accuracy"]
    assert main(["attack", run.run_id, "--eps", "0", "2"]) == 0
    assert "ε (/255)" in capsys.readouterr().out
    for bad, message in ((["--method", "cw"], "unknown attack 'cw'"), (["--eps", "-1"], "whole grey levels"),
                         (["--eps", "1.5"], "invalid int value")):
        assert main(["attack", run.run_id, *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1, err


def test_one_image_attacked_changes_the_answer_and_shows_where_the_model_looks(run, data_dir):
    explainer = Explainer.load(run)
    test = datamod.load_copy("cifar10", run.config.data_copy, str(data_dir)).test
    images = [image.permute(1, 2, 0).numpy() for image in test.images[:6]]
    results = [attacked(explainer, image, "pgd", 8) for image in images]
    for image, result in zip(images, results):
        assert result.image.dtype == np.uint8 and result.image.shape == image.shape
        assert np.abs(result.image.astype(int) - image).max() <= 8
        assert result.before.heatmap.shape == result.after.heatmap.shape == image.shape[:2]
        assert result.before.prediction.label == result.before.target  # Grad-CAM of the model's own answers
        assert result.fooled == (result.after.prediction.label != result.before.prediction.label)
    assert sum(r.fooled for r in results) >= 3, [r.after.prediction.class_name for r in results]
    unchanged = attacked(explainer, images[0], "fgsm", 0)
    assert np.array_equal(unchanged.image, images[0]) and not unchanged.fooled

    picture, gain = perturbation_picture(images[0], results[0].image, 8)
    assert picture.dtype == np.uint8 and gain == pytest.approx(127.5 / 8)
    same = results[0].image == images[0]
    assert (picture[same] == 128).all() and picture.min() < 40 and picture.max() > 215


def test_test_time_flips_are_part_of_the_attacked_model(synthetic_root, data_dir):
    recipe = get_model("lenet5").recipes["cifar10"].replace(epochs=2, batch_size=32, tta=True)
    config = RunConfig("lenet5", "cifar10", recipe, data_copy=datamod.find_source("cifar10", data_dir).copy)
    run, _ = train_run(config, data_dir=str(data_dir), device="cpu")
    model = run.load_model()
    assert model.tta
    images = subset(datamod.load_copy("cifar10", config.data_copy, str(data_dir)).test)
    clean = (predict_probs(model, images, torch.device("cpu")).argmax(1) == images.labels).float().mean().item()
    assert attack_of(run, "fgsm", [0], str(data_dir), "cpu")["accuracy"] == [pytest.approx(clean, abs=1e-6)]
    x, y = images.images[:8].float(), images.labels[:8]
    one_view = run.load_model()
    one_view.tta = False
    assert not torch.equal(perturb(model, x, y, "fgsm", 4), perturb(one_view, x, y, "fgsm", 4))
    explainer = Explainer.load(run)
    image = images.images[0].permute(1, 2, 0).numpy()
    assert np.array_equal(attacked(explainer, image, "fgsm", 4).image,
                          perturb(model, x[:1], model(x[:1]).argmax(1), "fgsm", 4)[0].permute(1, 2, 0).byte().numpy())
