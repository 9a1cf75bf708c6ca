"""The torch-free table of components: equal to the registries, and worded as their own errors."""

import subprocess
import sys

import pytest

from dmlkit.assembly import check_config
from dmlkit.config import load_config
from dmlkit.config.catalogue import generate, precheck
from dmlkit.config.catalogue_table import TABLE
from dmlkit.errors import ConfigError
from paths import QUICKSTART


def test_the_table_equals_the_registries():
    assert generate() == TABLE, "the registries changed: run `python -m dmlkit.config.catalogue`"


BAD = [
    ["loss.name=tripplet"],
    ["loss.margn=0.1"],
    ["loss.embedding_dim=7"],
    ["loss={name: triplet, miner: {name: hardest}}"],
    ["loss={name: triplet, miner: {name: batch_hard, squard: true}}"],
    ["method={name: dvmll}"],
    ["method={name: dvml, num_sample: 3}"],
    ["method={name: dvml, feature_dim: 3}"],
    ["model.backbone=resnet5"],
]


@pytest.mark.parametrize("overrides", BAD, ids=lambda o: o[0])
def test_the_precheck_says_what_the_full_check_says(overrides):
    cfg = load_config(QUICKSTART, overrides)
    with pytest.raises(ConfigError) as early:
        precheck(cfg)
    with pytest.raises(ConfigError) as full:
        check_config(cfg)
    assert str(early.value) == str(full.value)


@pytest.mark.parametrize("overrides", [[], ["model.backbone=timm:efficientnet_lite0"], ["loss=null"]])
def test_the_precheck_passes_valid_configs(overrides):
    precheck(load_config(QUICKSTART, overrides))


def test_an_unknown_loss_is_reported_without_importing_torch(tmp_path):
    code = (
        "import sys\n"
        "from dmlkit.cli.main import main\n"
        f"code = main(['train', {str(QUICKSTART)!r}, '--set', 'loss.name=tripplet', '--set', "
        f"'output_dir={tmp_path}'])\n"
        "assert code == 2, code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "unknown loss 'tripplet'" in done.stderr
