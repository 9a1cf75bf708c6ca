import pytest

from dmlkit.errors import ConfigError
from dmlkit.registry import Registry


def make() -> Registry:
    reg: Registry = Registry("widget", injected=["embedding_dim"])

    @reg.register("scaled")
    def scaled(value: float, scale: float = 2.0, embedding_dim: int = 0):
        return (value * scale, embedding_dim)

    return reg


def test_build_passes_params_and_only_accepted_context():
    reg = make()
    assert reg.build("scaled", {"value": 3.0}, embedding_dim=8, num_classes=5) == (6.0, 8)


def test_injected_params_cannot_be_set_by_the_user():
    with pytest.raises(ConfigError, match=r"loss\.embedding_dim: supplied by dmlkit"):
        make().build("scaled", {"value": 1.0, "embedding_dim": 4}, key="loss", embedding_dim=8)
    assert "embedding_dim" not in make().parameters("scaled")


def test_unknown_name_lists_choices():
    with pytest.raises(ConfigError, match=r"loss\.name: unknown widget 'nope'; valid choices: scaled"):
        make().get("nope", key="loss.name")


def test_unknown_param_names_key_and_valid_keys():
    with pytest.raises(ConfigError, match=r"loss\.sclae.*valid keys: scale, value"):
        make().build("scaled", {"value": 1.0, "sclae": 3}, key="loss")


def test_missing_required_param_is_config_error():
    with pytest.raises(ConfigError, match="invalid parameters for widget 'scaled'"):
        make().build("scaled", {}, key="loss")


def test_duplicate_registration_fails():
    reg = make()
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("scaled")(lambda: None)
