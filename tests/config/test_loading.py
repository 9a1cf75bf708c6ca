import pytest

from dmlkit.config import config_to_dict, dump_yaml, load_config, read_yaml
from dmlkit.config.schema import RunConfig
from dmlkit.errors import ConfigError
from paths import CONFIGS


def test_defaults_without_file():
    cfg = load_config(None)
    assert cfg == RunConfig()


def test_overrides_are_typed_and_nested(tmp_path):
    cfg = load_config(
        CONFIGS / "quickstart.yaml",
        [
            "trainer.epochs=3",
            "optimizer.lr=1e-4",
            "loss.margin=0.5",
            "eval.recall_at=[1,10]",
            "data.root=/x",
        ],
    )
    assert cfg.trainer.epochs == 3
    assert cfg.optimizer.lr == pytest.approx(1e-4)
    assert cfg.loss == {"name": "proxy_anchor", "margin": 0.5}
    assert cfg.eval.recall_at == [1, 10]
    assert cfg.data.root == "/x"


def test_naming_another_component_drops_the_old_ones_parameters():
    cfg = load_config(None, ["loss={name: triplet, margin: 0.5}", "loss.name=npair", "loss.l2_reg=0.01"])
    assert cfg.loss == {"name": "npair", "l2_reg": 0.01}
    assert load_config(None, ["loss={name: triplet}", "loss.name=triplet", "loss.margin=0.1"]).loss == {
        "name": "triplet",
        "margin": 0.1,
    }


def test_a_loss_parameter_without_a_loss_name_is_an_error():
    with pytest.raises(ConfigError, match=r"'loss\.name': required"):
        load_config(None, ["loss.margin=0.1"])


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
        ("eval.retrieval_queries=-1", r"'eval\.retrieval_queries': must be >= 0, got -1"),
        ("paper=3", r"'paper': expected dict\[str, Any\] or null, got 3"),
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


# ----------------------------------------------------------------------------- composition
def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_base_files_are_merged_under_the_file(tmp_path):
    write(tmp_path / "base" / "data.yaml", "data: {dataset: omniglot, image_size: 28, num_workers: 2}\nseed: 3\n")
    write(tmp_path / "base" / "loss.yaml", "loss: {name: triplet, margin: 0.2, squared: true}\n")
    child = write(
        tmp_path / "runs" / "child.yaml",
        "base: [../base/data.yaml, ../base/loss.yaml]\ndata: {num_workers: 0}\nloss: {margin: 0.1}\n",
    )
    cfg = load_config(child)
    assert (cfg.data.dataset, cfg.data.image_size, cfg.data.num_workers, cfg.seed) == ("omniglot", 28, 0, 3)
    assert cfg.loss == {"name": "triplet", "margin": 0.1, "squared": True}


def test_a_base_can_have_a_base_and_later_bases_win(tmp_path):
    write(tmp_path / "a.yaml", "trainer: {epochs: 1, eval_every: 1}\n")
    write(tmp_path / "b.yaml", "base: a.yaml\ntrainer: {epochs: 2}\n")
    write(tmp_path / "c.yaml", "trainer: {epochs: 3}\n")
    cfg = load_config(write(tmp_path / "d.yaml", "base: [b.yaml, c.yaml]\n"))
    assert (cfg.trainer.epochs, cfg.trainer.eval_every) == (3, 1)


def test_another_component_replaces_the_inherited_one_and_null_removes_it(tmp_path):
    write(tmp_path / "base.yaml", "loss: {name: triplet, margin: 0.2}\nmethod: {name: dvml, num_samples: 4}\n")
    cfg = load_config(write(tmp_path / "x.yaml", "base: base.yaml\nloss: {name: npair}\nmethod: {name: magnet}\n"))
    assert cfg.loss == {"name": "npair"} and cfg.method == {"name": "magnet"}
    assert load_config(write(tmp_path / "y.yaml", "base: base.yaml\nloss: null\n")).loss is None


def test_a_paper_row_replaces_the_inherited_one_whole(tmp_path):
    write(tmp_path / "base.yaml", "paper: {row: A, metrics: {recall@1: 0.5, nmi: 0.6}}\n")
    cfg = load_config(write(tmp_path / "x.yaml", "base: base.yaml\npaper: {row: B, metrics: {recall@1: 0.7}}\n"))
    assert cfg.paper == {"row": "B", "metrics": {"recall@1": 0.7}}  # no NMI of row A under row B


@pytest.mark.parametrize(
    ("paper", "message"),
    [
        ("{row: A, metrics: {recall@1: 80.4}}", r"'paper\.metrics\.recall@1': expected a fraction .*0\.804"),
        ("{row: A, metrics: {recal@1: 0.8}}", r"'paper\.metrics\.recal@1': unknown metric"),
        ("{metrics: {}}", r"config key 'paper': expected \{row: <label>"),
        ("{row: A, figures: {}}", r"unknown key\(s\) paper\.figures"),
    ],
)
def test_a_bad_paper_row_names_the_key(tmp_path, paper, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path / "x.yaml", f"paper: {paper}\n"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("base: missing.yaml\n", r"base file 'missing.yaml' not found"),
        ("base: 3\n", r"'base' must be a file path or a list of paths, got 3"),
        ("base: [self.yaml]\n", r"'base' files include each other: .*self.yaml -> .*self.yaml"),
    ],
)
def test_bad_bases_name_the_file(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path / "self.yaml", text))
