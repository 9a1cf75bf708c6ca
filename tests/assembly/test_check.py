"""The dry build: every section checked by value before anything is created, and the derived values resolved."""

import pytest
import torch

from dmlkit.assembly import check as check_module
from dmlkit.assembly import check_config
from dmlkit.config import load_config
from dmlkit.errors import ConfigError
from paths import QUICKSTART

MAGNET = ["method={name: magnet}", "loss=null", "data.classes_per_batch=null", "data.samples_per_class=null"]


def checked(*overrides):
    return check_config(load_config(QUICKSTART, list(overrides)))


def test_resolves_the_derived_values():
    cfg = check_config(load_config(None))
    assert cfg.data.image_size == 8  # the digits' default size
    assert cfg.loss == {"name": "triplet"}  # the default loss of a method that trains one
    assert (cfg.data.classes_per_batch, cfg.data.samples_per_class, cfg.data.skip_singleton_classes) == (5, 8, False)
    assert check_config(cfg) == cfg  # resolving is idempotent (a saved config.yaml checks to itself)
    magnet = checked(*MAGNET)
    assert magnet.loss is None and magnet.data.classes_per_batch is None  # nothing recorded that is not used


def test_needs_no_data_and_no_weights(tmp_path):
    """Data and weights files are the assembly's to read; the dry build looks at values only."""
    cfg = load_config(
        QUICKSTART,
        [
            "data.dataset=cub200",
            f"data.root={tmp_path / 'absent'}",
            "data.image_size=null",
            "model.backbone=resnet50",
            "model.pretrained=true",
        ],
    )
    assert check_config(cfg).data.image_size == 224


def test_builds_on_the_meta_device(monkeypatch):
    built = []
    real = check_module.build_method

    def spy(cfg, facts, model):
        method = real(cfg, facts, model)
        built.append({p.device.type for p in model.parameters()})
        return method

    monkeypatch.setattr(check_module, "build_method", spy)
    checked("method={name: dvml}", "loss={name: triplet}")
    assert built == [{"meta"}]
    assert torch.empty(1).device.type == "cpu"  # the default device is left as it was


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["loss.margn=0.1"], r"unknown key\(s\) loss\.margn for loss 'proxy_anchor'; valid keys: .*margin"),
        (["loss.margin=-1"], r"loss\.margin"),
        (["method={name: dvml, num_samplez: 3}"], r"unknown key\(s\) method\.num_samplez"),
        (["method={name: dvml, phase1_lambdas: [1, 2]}"], r"method\.phase1_lambdas"),
        (["method={name: nope}"], r"method\.name: unknown method 'nope'; valid choices: dvml"),
        (["model.pooling=median"], r"model\.pooling"),
        (["model.head_init=zeros"], r"model\.head_init"),
        (["data.transform={scale: [0.5, 2.0]}"], r"data\.transform\.scale"),
        (["data.transform={colour: true}"], r"data\.transform\.colour"),
        (["data.dataset=imagenet"], r"data\.dataset: unknown dataset 'imagenet'"),
        (["scheduler.name=step", "scheduler.step_epochs=0"], r"scheduler\.step_epochs"),
        (["optimizer.betas=[0.9]"], r"optimizer\.betas"),
        (["trainer.precision=fp17"], r"trainer\.precision': unknown 'fp17'; valid choices: .*bf16-mixed"),
        (["trainer.accelerator=tpux"], r"trainer\.accelerator': unknown 'tpux'; valid choices: auto, gpu, cpu"),
        (["trainer.strategy=fast"], r"trainer\.strategy': unknown 'fast'; valid choices: auto, .*ddp"),
        (["trainer.devices=0"], r"trainer\.devices': expected a number of devices >= 1"),
        (["trainer.devices=abc"], r"trainer\.devices'"),
        (["trainer.num_nodes=0"], r"trainer\.num_nodes': must be >= 1"),
        (["trainer.max_steps_per_epoch=0"], r"trainer\.max_steps_per_epoch"),
    ],
)
def test_a_bad_value_in_any_section_names_its_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        checked(*overrides)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["method={name: dvml, embedding_dim: 8}"], "method.embedding_dim"),
        (["method={name: intra_batch, num_classes: 3}", "loss=null"], "method.num_classes"),
        (["method={name: dvml, epochs: 3}"], "method.epochs"),
        (["loss={name: proxy_anchor, num_classes: 10}"], "loss.num_classes"),
        (["loss={name: proxy_anchor, embedding_dim: 10}"], "loss.embedding_dim"),
    ],
)
def test_values_the_assembly_supplies_cannot_be_set(overrides, key):
    with pytest.raises(ConfigError, match=rf"{key}: supplied by dmlkit"):
        checked(*overrides)


def test_a_section_the_method_does_not_use_is_an_error():
    with pytest.raises(
        ConfigError, match=r"config section 'loss' \('proxy_anchor'\): method 'magnet' has a loss of its own"
    ):
        checked(*[o for o in MAGNET if o != "loss=null"])
    with pytest.raises(
        ConfigError, match=r"data\.classes_per_batch, data\.samples_per_class: method 'magnet' draws its own"
    ):
        checked("method={name: magnet}", "loss=null")
    with pytest.raises(ConfigError, match=r"data\.skip_singleton_classes: method 'pl_manifold'"):
        checked("method={name: pl_manifold}", *MAGNET[1:], "data.skip_singleton_classes=false")
