"""Paths the tests use: the repository's configs and the shared real data beside the checkout."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
QUICKSTART = str(CONFIGS / "quickstart.yaml")
SHARED_DATA = ROOT.parent / "shared" / "data"
