import pytest

from dmlkit.config import config_to_dict, dump_yaml, load_config, read_yaml
from dmlkit.config.schema import RunConfig
from dmlkit.errors import ConfigError
from paths import CONFIGS


def test_defaults_without_file():
    cfg = load_config(None)
    assert cfg == RunConfig()


@pytest.mark.parametrize("path", sorted(CONFIGS.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_shipped_configs_validate(path):
    from dmlkit.losses import LOSSES
    from dmlkit.methods import METHODS

    cfg = load_config(path)
    assert cfg.loss["name"] and cfg.method["name"]
    # every loss and method key is a parameter of the registered component
    assert set(cfg.method) - {"name"} <= set(METHODS.parameters(cfg.method["name"]))
    assert set(cfg.loss) - {"name"} <= set(LOSSES.parameters(cfg.loss["name"]))


def test_overrides_are_typed_and_nested(tmp_path):
    cfg = load_config(
        CONFIGS / "quickstart.yaml",
        [
            "trainer.epochs=3",
            "optimizer.lr=1e-4",
            "loss.margin=0.5",
            "eval.recall_at=[1,10]",
            "data.root=/x",
            "loss.name=triplet",
        ],
    )
    assert cfg.trainer.epochs == 3
    assert cfg.optimizer.lr == pytest.approx(1e-4)
    assert cfg.loss == {"name": "triplet", "margin": 0.5}
    assert cfg.eval.recall_at == [1, 10]
    assert cfg.data.root == "/x"


def test_loss_override_without_loss_section_keeps_default_name():
    assert load_config(None, ["loss.margin=0.1"]).loss == {"name": "triplet", "margin": 0.1}


def test_round_trip_through_yaml(tmp_path):
    cfg = load_config(CONFIGS / "quickstart.yaml", ["trainer.epochs=2"])
    path = tmp_path / "config.yaml"
    path.write_text(dump_yaml(config_to_dict(cfg)))
    assert load_config(path) == cfg


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.epoch=3", r"unknown config key\(s\) trainer\.epoch; valid keys under trainer: .*epochs"),
        ("trainer.epochs=ten", r"'trainer\.epochs': expected an integer, got 'ten'"),
        ("trainer.epochs=0", r"'trainer\.epochs': must be >= 1"),
        ("optimizer.name=adamx", r"'optimizer\.name': invalid value 'adamx'; valid choices: adam, adamw"),
        ("eval.metrics=[foo]", r"'eval\.metrics': unknown metric\(s\) \['foo'\]"),
        ("model.pretrained=3", r"'model\.pretrained': expected bool or str"),
        ("optimizer.lr=-1", r"'optimizer\.lr': must be > 0"),
        ("bogus=1", r"unknown config key\(s\) bogus; valid keys: seed"),
        ("trainer=3", r"'trainer': expected a mapping"),
        ("loss.name=null", r"'loss\.name': required"),
        ("noequals", r"expected KEY=VALUE"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*missing.yaml"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid YAML"):
        read_yaml(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping at the top level"):
        load_config(listy)
    typo = tmp_path / "typo.yaml"
    typo.write_text("data:\n  datset: digits\n")
    with pytest.raises(ConfigError, match=r"typo\.yaml: unknown config key\(s\) data\.datset"):
        load_config(typo)
