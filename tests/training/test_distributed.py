"""Several processes train the same model as one process on the global batch (gloo, on CPU).

One ``torchrun --nproc_per_node 2`` launch (:mod:`ddp_worker`) trains every case with each process
holding half of every batch (``G`` groups — classes, clusters, queries — per process); the same case
then trains in this process with ``2G`` groups. From the same seed the two must see the same
batches, the same augmentations and the same losses, and end with the same parameters: the loss of
each step (every step is logged) and every parameter and buffer of the model and the method after
four optimiser steps (two epochs, so that epoch-end work — Magnet's cluster index, pseudo-labels,
PL-Manifold's neighbour lists, DVML's phase 2 — runs on both sides) agree to ``RTOL``/``ATOL``
(with SGD; see ``COMMON``).
BatchNorm is frozen (``model.freeze_bn``): with batch statistics each process would normalise its own
shard (``trainer.sync_batchnorm`` makes them global, on GPUs).

The launch also runs a crash and resume under DDP, and a ``per_rank`` run, whose loss is the loss of
each process's own batch.
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dmlkit.config import load_config
from dmlkit.errors import DmlkitError
from dmlkit.training.checkpoint import load_checkpoint
from dmlkit.training.trainer import Trainer
from paths import QUICKSTART

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("ddp_worker.py")
RTOL, ATOL = 1e-4, 1e-5  # float32 sums in another order (half batches, then the all-reduce)
OWN_BATCHES = ["data.classes_per_batch=null", "data.samples_per_class=null"]
P = "data.classes_per_batch={g}"
#: case -> overrides, with ``{g}`` the groups of a batch per process (``g`` = 2 here, 4 in one process)
CASES = {
    "pair: contrastive": ["loss={name: contrastive}", P],
    "triplet, semi-hard mining": ["loss={name: triplet}", P],
    "triplet2 + distance-weighted sampling (random)": ["loss={name: triplet2_dws}", P],
    "multi-similarity": ["loss={name: multi_similarity}", P],
    "proxy: proxy-anchor": [P],  # the quick-start's loss
    "softmax: normalized softmax": ["loss={name: normalized_softmax}", P],
    "n-pair": ["loss={name: npair}", P, "data.samples_per_class=2"],
    "magnet": [
        "method={name: magnet, clusters_per_class: 2, clusters_per_batch: {g}, samples_per_cluster: 4}",
        "loss=null",
        "model.normalize=false",
        *OWN_BATCHES,
    ],
    "dvml": ["method={name: dvml, num_samples: 2, phase1_epochs: 1, tsne_points: 150}", "loss={name: triplet}", P],
    "intra_batch": ["method={name: intra_batch, heads: 2}", "loss=null", P],
    "pl_manifold": [
        "method={name: pl_manifold, queries: {g}, neighbours: 4, num_proxies: 8, diagnostic_batches: 2}",
        "loss=null",
        *OWN_BATCHES,
    ],
    "pseudo_label": [
        "method={name: pseudo_label, clusters: 10, classes_per_batch: {g}, samples_per_class: 4}",
        "loss={name: triplet}",
        *OWN_BATCHES,
    ],
}
COMMON = [
    "trainer.accelerator=cpu",
    "trainer.progress_bar=false",
    "trainer.threads=1",
    "trainer.epochs=2",
    "trainer.max_steps_per_epoch=2",
    "trainer.eval_every=1",
    "trainer.log_every=1",
    "data.samples_per_class=4",
    "data.num_workers=0",
    "model.freeze_bn=true",
    "eval.recall_at=[1,2]",
    "eval.untrained=false",
    # SGD: a parameter's difference is proportional to its gradient's; Adam's first steps move every
    # parameter by about lr whatever its gradient, so a gradient of ~1e-9 (numerical noise, e.g. behind
    # a dead ReLU) of opposite signs in the two runs moves a weight by up to 2 lr
    "optimizer.name=sgd",
    "optimizer.lr=0.05",
]
DDP = ["trainer.devices=2", "trainer.strategy=ddp"]
RESUME = ["loss={name: triplet}", P, "trainer.max_steps_per_epoch=3", "trainer.checkpoint_every_steps=1"]
CRASH_AFTER = 4  # the 5th step, the 2nd of epoch 2; last.pt was written after the 4th


def overrides(case: list[str], groups: int, *extra: str) -> list[str]:
    return [*COMMON, *(o.replace("{g}", str(groups)) for o in case), *extra]


def slug(case: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in case)


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """The torchrun launch of every case (2 processes × 2 groups), and its run directories."""
    root = tmp_path_factory.mktemp("ddp")
    cases = [
        {"config": QUICKSTART, "overrides": overrides(o, 2, *DDP), "run_dir": str(root / slug(c))}
        for c, o in CASES.items()
    ]
    cases.append({"config": QUICKSTART, "overrides": overrides(RESUME, 2, *DDP), "run_dir": str(root / "straight")})
    resumed = {"config": QUICKSTART, "overrides": overrides(RESUME, 2, *DDP), "run_dir": str(root / "resumed")}
    cases.append({**resumed, "crash_after": CRASH_AFTER})
    per_rank = overrides(CASES["triplet, semi-hard mining"], 4, *DDP, "trainer.distributed_batch=per_rank")
    cases.append({"config": QUICKSTART, "overrides": per_rank, "run_dir": str(root / "per_rank")})
    (root / "cases.json").write_text(json.dumps(cases))
    env = {k: v for k, v in os.environ.items() if k not in ("DMLKIT_RUN_DIR", "WORLD_SIZE", "LOCAL_RANK", "RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(WORKER.parents[1]), env.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = subprocess.run([*cmd, str(WORKER), str(root / "cases.json")], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return root


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The same cases in this process, one process with the whole batch (4 groups)."""
    root = tmp_path_factory.mktemp("single")
    for case, extra in CASES.items():
        Trainer(load_config(QUICKSTART, overrides(extra, 4)), root / slug(case)).fit()
    Trainer(load_config(QUICKSTART, overrides(RESUME, 4)), root / "straight").fit()
    return root


def losses(run_dir: Path) -> list[float]:
    with open(run_dir / "logs" / "csv" / "metrics.csv") as f:
        return [float(row["train/loss"]) for row in csv.DictReader(f) if row.get("train/loss")]


def assert_same_weights(a_dir: Path, b_dir: Path) -> None:
    a, b = (load_checkpoint(d / "checkpoints" / "last.pt") for d in (a_dir, b_dir))
    assert a["global_step"] == b["global_step"]
    for part in ("model", "method"):
        assert a[part].keys() == b[part].keys(), part
        for key in a[part]:
            x, y = a[part][key], b[part][key]
            if x.is_floating_point():
                assert torch.allclose(x, y, rtol=RTOL, atol=ATOL), f"{part}.{key}: max |diff| {(x - y).abs().max()}"
            else:
                assert torch.equal(x, y), f"{part}.{key}"


@pytest.mark.parametrize("case", list(CASES))
def test_two_processes_train_as_one_on_the_global_batch(launched, single, case):
    two, one = launched / slug(case), single / slug(case)
    for run in (two, one):
        assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
    assert len(losses(one)) == 4
    assert losses(two) == pytest.approx(losses(one), rel=RTOL, abs=ATOL)
    assert_same_weights(two, one)


def test_the_matrix_covers_every_registered_method():
    from dmlkit.methods import METHODS

    names = {load_config(QUICKSTART, overrides(o, 2)).method["name"] for o in CASES.values()}
    assert names == set(METHODS.names())


def test_resume_under_ddp_reproduces_the_uninterrupted_run(launched, single):
    crashed = json.loads((launched / "resumed" / "metrics.json").read_text())
    assert crashed["status"] == "completed" and crashed["global_step"] == 6
    assert_same_weights(launched / "resumed", launched / "straight")
    assert_same_weights(launched / "straight", single / "straight")


def test_resume_on_another_number_of_processes_is_refused(launched):
    from dmlkit.assembly import build_fabric

    cfg = load_config(QUICKSTART, overrides(RESUME, 2, *DDP))
    with pytest.raises(DmlkitError, match=r"trainer\.devices"):  # the config says so first
        Trainer(load_config(QUICKSTART, overrides(RESUME, 2)), launched / "straight", resume=True).fit()
    # the same config launched as one process (devices: auto or an external launcher can do that)
    one = build_fabric(cfg.trainer, devices=1)
    with pytest.raises(DmlkitError, match=r"written by a run of 2 process\(es\), this one has 1"):
        Trainer(cfg, launched / "straight", resume=True, fabric=one).fit()


def test_per_rank_mode_gives_each_process_a_loss_of_its_own_batch(launched, single):
    """Each process draws whole batches of the config's size (4 classes), rank 0 the source's batch 0,
    which is the single-process run's first batch: its loss is that batch's alone."""
    one = single / slug("triplet, semi-hard mining")
    assert losses(launched / "per_rank")[0] == pytest.approx(losses(one)[0], rel=RTOL, abs=ATOL)
    assert load_checkpoint(launched / "per_rank" / "checkpoints" / "last.pt")["global_step"] == 4
