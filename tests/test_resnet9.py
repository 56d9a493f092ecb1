"""ResNet-9 is Page's DAWNBench net, layer by layer, and its recipe is Page's schedule in mean-loss terms."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convnets.models import get_model, resnet9

pytestmark = pytest.mark.usefixtures("one_thread")


def _conv_shapes(model: nn.Module) -> list[tuple[int, int]]:
    return [(m.in_channels, m.out_channels) for m in model.modules() if isinstance(m, nn.Conv2d)]


def test_layout_is_pages():
    model = get_model("resnet9").build("cifar10")
    assert _conv_shapes(model) == [(3, 64), (64, 128), (128, 128), (128, 128), (128, 256), (256, 512),
                                   (512, 512), (512, 512)]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.bias is None and m.kernel_size == (3, 3) and m.padding == (1, 1) for m in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == len(convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 3
    fc = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(fc) == 1 and fc[0].in_features == 512 and fc[0].bias is None


def test_param_count_by_layer():
    """Each conv k*k*c_in*c_out plus BN 2*c_out, and the bias-free fc 512*10: 6,573,120 in all."""
    expected = sum(9 * a * b + 2 * b for a, b in _conv_shapes(get_model("resnet9").build("cifar10"))) + 5120
    assert expected == 6_573_120
    assert get_model("resnet9").num_params("cifar10") == expected


def test_logits_are_scaled_by_an_eighth():
    torch.manual_seed(0)
    model = get_model("resnet9").build("cifar10").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        scaled = model(x)
        unscaled = model[:-1](x)
    assert isinstance(model[-1], resnet9.Scale) and not list(model[-1].parameters())
    torch.testing.assert_close(scaled, unscaled * 0.125)


def test_residual_adds_its_input():
    block = resnet9.Residual(8).eval()
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.zeros_(m.weight)  # the branch then outputs ReLU(0) = 0
    x = torch.randn(2, 8, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x)


def test_spec_metadata_and_recipe():
    spec = get_model("resnet9")
    assert (spec.kind, spec.family, spec.datasets) == ("modern", "ResNet", ("cifar10",))
    assert spec.paper_accuracy == {"cifar10": 0.94} and "Page 2018" in spec.citation
    r = spec.recipes["cifar10"]
    assert (r.epochs, r.batch_size, r.lr, r.weight_decay, r.label_smoothing) == (24, 512, 0.4, 5e-4, 0.2)
    assert (r.optimizer, r.momentum, r.nesterov, r.schedule, r.augment, r.normalize) == (
        "sgd", 0.9, True, "onecycle", "crop-flip", "channel")


def test_mean_loss_recipe_takes_pages_summed_loss_steps():
    """Page: summed loss, lr 0.4 / batch, weight decay 5e-4 * batch. Engine: mean loss, lr 0.4, wd 5e-4."""
    torch.manual_seed(0)
    batch = 16
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 10))
    page, ours = net, copy.deepcopy(net)
    opt_page = torch.optim.SGD(page.parameters(), lr=0.4 / batch, momentum=0.9, nesterov=True,
                               weight_decay=5e-4 * batch)
    opt_ours = torch.optim.SGD(ours.parameters(), lr=0.4, momentum=0.9, nesterov=True, weight_decay=5e-4)
    for _ in range(3):
        x, y = torch.randn(batch, 12), torch.randint(0, 10, (batch,))
        for model, opt, reduction in ((page, opt_page, "sum"), (ours, opt_ours, "mean")):
            opt.zero_grad()
            F.cross_entropy(model(x), y, label_smoothing=0.2, reduction=reduction).backward()
            opt.step()
    for a, b in zip(page.parameters(), ours.parameters()):
        torch.testing.assert_close(a, b)


def test_trains_a_step():
    torch.manual_seed(0)
    model = get_model("resnet9").build("cifar10").train()
    loss = F.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
