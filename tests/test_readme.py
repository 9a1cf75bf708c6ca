"""The README's code cannot rot: its Python blocks run, its YAML blocks pass the dry build."""

import re
import subprocess
import sys

import pytest
import yaml

from dmlkit.assembly import check_config
from dmlkit.config import config_from_dict
from paths import CONFIGS, ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.S | re.M)


def test_the_readme_has_its_examples():
    assert len(blocks("python")) >= 3 and blocks("yaml")


@pytest.mark.slow
def test_python_blocks_run_in_order(tmp_path):
    """Run from a directory that looks like the repository root (its configs), so the runs stay in tmp."""
    (tmp_path / "configs").symlink_to(CONFIGS)
    script = tmp_path / "readme.py"
    script.write_text("\n\n".join(blocks("python")), encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "runs" / "api-demo" / "test.npz").is_file()
    assert (tmp_path / "runs" / "centre-pull" / "checkpoints" / "last.pt").is_file()


@pytest.mark.parametrize("block", blocks("yaml"))
def test_yaml_blocks_pass_the_dry_build(block):
    check_config(config_from_dict(yaml.safe_load(block)))
