"""How tight and how far apart the classes of trained runs are, on their training and test splits (JSON).

For each run directory and split: the embeddings as evaluated (L2-normalised where the model normalises),
``spread`` = root-mean-square distance of an image to its class centre, ``nearest_centre`` = mean over
classes of the distance from a class centre to the nearest other centre, and their ratio (lower: tighter,
better separated classes). Used by docs/dvml.md to compare DVML with its base loss.

Usage:
    python benchmarks/class_geometry.py runs/dvml_final/omniglot_triplet2_dws-s0 \
        runs/dvml_final/dvml_omniglot_triplet2_dws-s0 [--splits train test]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from dmlkit import load_run


def geometry(emb: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """``spread``, ``nearest_centre`` and ``ratio`` of embeddings ``emb`` with class ``labels``."""
    classes = np.unique(labels)
    centres = np.stack([emb[labels == c].mean(0) for c in classes])
    index = np.searchsorted(classes, labels)
    spread = float(np.sqrt(((emb - centres[index]) ** 2).sum(1).mean()))
    d = torch.cdist(torch.from_numpy(centres).double(), torch.from_numpy(centres).double())
    d.fill_diagonal_(float("inf"))
    nearest = float(d.min(1).values.mean())
    return {"spread": round(spread, 4), "nearest_centre": round(nearest, 4), "ratio": round(spread / nearest, 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+")
    p.add_argument("--splits", nargs="+", default=["train", "test"])
    args = p.parse_args()
    out = {}
    for run_dir in args.runs:
        run = load_run(run_dir)
        out[run_dir] = {}
        for split in args.splits:
            e = run.embed(run.dataset(split))
            out[run_dir][split] = geometry(e.embeddings.astype(np.float64), e.labels)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
