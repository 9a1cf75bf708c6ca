"""Frozen BatchNorm stays frozen through ``.train()``, forward passes and optimiser steps."""

import copy

import torch
from torch import nn

from dmlkit.models import build_model, freeze_batchnorm
from dmlkit.models.frozen_bn import is_frozen


def make_net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))


def shifted_batch() -> torch.Tensor:
    return torch.randn(8, 1, 6, 6) * 5 + 3


def test_plain_module_stays_frozen_through_train_and_a_step():
    net = make_net()
    net(shifted_batch())  # materialise the lazy layer
    bn = net[1]
    layers = freeze_batchnorm(net)
    assert layers == [bn] and is_frozen(bn) and not bn.training
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    net.train()  # a plain module has no train() override: the pre-hook keeps the layer in eval mode
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    net(shifted_batch()).pow(2).sum().backward()
    optimizer.step()
    assert not bn.training
    assert all(torch.equal(bn.state_dict()[k], v) for k, v in before.items())
    assert not bn.weight.requires_grad and bn.weight.grad is None and bn.bias.grad is None
    assert net[0].weight.grad is not None


def test_freezing_is_idempotent_and_optionally_keeps_affine():
    net = make_net()
    freeze_batchnorm(net, affine=False)
    freeze_batchnorm(net, affine=False)
    assert len(net[1]._forward_pre_hooks) == 1
    assert net[1].weight.requires_grad


def test_unfrozen_batchnorm_updates_its_statistics():
    model = build_model("small_cnn", 8, in_channels=1).train()
    model(shifted_batch())
    assert not torch.equal(model.backbone.layers[1].running_mean, torch.zeros(32))


def test_embedding_model_freeze_bn():
    model = build_model("small_cnn", 8, in_channels=1, freeze_bn=True)
    keys = set(build_model("small_cnn", 8, in_channels=1).state_dict())
    assert set(model.state_dict()) == keys  # checkpoints are interchangeable
    model.train()
    bn = model.backbone.layers[1]
    assert model.training and not bn.training and not bn.weight.requires_grad
    before = bn.running_mean.clone()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(shifted_batch()).sum().backward()
    optimizer.step()
    assert torch.equal(bn.running_mean, before) and bn.weight.grad is None
    assert model.head.linear.weight.grad is not None and model.backbone.layers[0].weight.grad is not None
    clone = copy.deepcopy(model).train()
    assert not clone.backbone.layers[1].training
