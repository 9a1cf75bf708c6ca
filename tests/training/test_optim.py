import math

import pytest
import torch

from dmlkit.config.schema import OptimizerConfig, SchedulerConfig
from dmlkit.errors import ConfigError
from dmlkit.training.optim import build_optimizer, build_scheduler, lr_factor


@pytest.mark.parametrize("name", ["adam", "adamw", "radam", "sgd"])
def test_optimizers_keep_group_lrs(name):
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = build_optimizer(OptimizerConfig(name=name, lr=0.1), [{"params": [a], "lr": 0.1}, {"params": [b], "lr": 10.0}])
    assert [g["lr"] for g in opt.param_groups] == [0.1, 10.0]


def test_cosine_with_warmup_closed_form():
    cfg = SchedulerConfig(name="cosine", warmup_epochs=1, warmup_start=0.0, min_lr_ratio=0.1)
    spe, epochs = 10, 5
    assert lr_factor(cfg, 0, spe, epochs) == pytest.approx(0.0)
    assert lr_factor(cfg, 5, spe, epochs) == pytest.approx(0.5)
    assert lr_factor(cfg, 10, spe, epochs) == pytest.approx(1.0)
    # halfway through the cosine part (epoch 3 of 1..5)
    assert lr_factor(cfg, 30, spe, epochs) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(cfg, 50, spe, epochs) == pytest.approx(0.1)


def test_step_and_multistep():
    step = SchedulerConfig(name="step", step_epochs=2, gamma=0.5)
    assert lr_factor(step, 45, 10, 10) == pytest.approx(0.25)
    ms = SchedulerConfig(name="multistep", milestones=[3, 6], gamma=0.1)
    assert lr_factor(ms, 29, 10, 10) == pytest.approx(1.0)
    assert lr_factor(ms, 30, 10, 10) == pytest.approx(0.1)
    assert lr_factor(ms, 60, 10, 10) == pytest.approx(0.01)


def test_scheduler_scales_every_group():
    p, q = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p], "lr": 1.0}, {"params": [q], "lr": 100.0}], lr=1.0)
    sched = build_scheduler(SchedulerConfig(name="step", step_epochs=1, gamma=0.5), opt, 2, 4)
    for _ in range(2):
        opt.step()
        sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.5, 50.0])


def test_bad_scheduler_values():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ConfigError, match="scheduler.step_epochs"):
        build_scheduler(SchedulerConfig(name="step", step_epochs=0), opt, 1, 1)
    with pytest.raises(ConfigError, match="optimizer.betas"):
        build_optimizer(OptimizerConfig(betas=[0.9]), [{"params": [torch.nn.Parameter(torch.zeros(1))]}])


def test_parameter_groups_split_backbone_head_and_the_loss_proxies():
    from dmlkit.losses import build_loss
    from dmlkit.methods.metric_loss import MetricLossMethod
    from dmlkit.models import build_model
    from dmlkit.training.optim import parameter_groups

    model = build_model("small_cnn", 8, in_channels=1, freeze_bn=True)
    method = MetricLossMethod(build_loss("proxy_anchor", {"lr_mult": 50.0}, embedding_dim=8, num_classes=3))
    cfg = OptimizerConfig(lr=1e-3, backbone_lr_mult=0.1, head_lr_mult=2.0)
    groups = {g["name"]: g for g in parameter_groups(cfg, model, method)}
    assert {k: g["lr"] for k, g in groups.items()} == pytest.approx({"backbone": 1e-4, "head": 2e-3, "loss": 5e-2})
    assert len(groups["backbone"]["params"]) == 3  # the three convolutions; the frozen BN affine excluded
    assert [id(p) for p in groups["head"]["params"]] == [id(model.head.linear.weight), id(model.head.linear.bias)]
    assert groups["loss"]["params"] == list(method.loss.parameters())
