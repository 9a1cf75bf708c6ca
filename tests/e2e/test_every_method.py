"""What a user does with every registered method, end to end: train, crash and resume mid-epoch,
``dmlkit eval`` and ``dmlkit embed`` of both checkpoints, and the same through the Python API.

The matrix covers every name in the method registry (a method without a case here fails
:func:`test_the_matrix_covers_every_registered_method`), plus a method registered only in this
module, which goes through the same steps without any change to the trainer.
"""

import json
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dmlkit
from dmlkit.cli.main import main
from dmlkit.config import load_config
from dmlkit.methods import METHODS, Method, StepOutput
from dmlkit.training.checkpoint import load_checkpoint
from dmlkit.training.trainer import Trainer
from paths import QUICKSTART

pytestmark = pytest.mark.slow


class CentrePull(Method):
    """A method of this test module only: a learnable centre per class, a softmax over negative squared
    distances to the centres, an extra state (steps seen) and a metric of its own."""

    def __init__(self, num_classes: int, embedding_dim: int, temperature: float = 0.5) -> None:
        super().__init__()
        self.centres = nn.Parameter(torch.randn(num_classes, embedding_dim) * 0.1)
        self.temperature = temperature
        self.steps = 0

    def training_step(self, model, batch: dict[str, Any]) -> StepOutput:
        embeddings, labels = self.gather(model(batch["image"]), batch["label"])
        logits = -torch.cdist(embeddings, self.centres).pow(2) / self.temperature
        return StepOutput(F.cross_entropy(logits, labels))

    def after_step(self, model, step: int) -> None:
        self.steps += 1

    def eval_metrics(self, embeddings, labels, dataset, final=False) -> dict[str, float]:
        return {"centre_spread": float(self.centres.detach().std())}

    def extra_checkpoint_state(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def load_extra_checkpoint_state(self, state: dict[str, Any]) -> None:
        self.steps = state["steps"]


OWN_BATCHES = ["data.classes_per_batch=null", "data.samples_per_class=null"]
CASES = {
    "metric_loss-proxy_anchor": [],  # the quick-start's own loss
    "metric_loss-contrastive": ["loss={name: contrastive}"],
    "magnet": [
        "method={name: magnet, clusters_per_class: 2, clusters_per_batch: 4, samples_per_cluster: 4}",
        "loss=null",
        "model.normalize=false",
        *OWN_BATCHES,
    ],
    "dvml": ["method={name: dvml, num_samples: 2, phase1_epochs: 1, tsne_points: 150}", "loss={name: triplet}"],
    "intra_batch": ["method={name: intra_batch, heads: 2, test_refinement: true, refinement_k1: 10}", "loss=null"],
    "pl_manifold": [
        "method={name: pl_manifold, queries: 6, neighbours: 4, num_proxies: 8, diagnostic_batches: 2}",
        "loss=null",
        *OWN_BATCHES,
    ],
    "pseudo_label": [
        "method={name: pseudo_label, clusters: 10, classes_per_batch: 4, samples_per_class: 4}",
        "loss={name: triplet}",
        *OWN_BATCHES,
    ],
    "centre_pull (registered in the test)": ["method={name: centre_pull}", "loss=null"],
}
COMMON = [
    "trainer.accelerator=cpu",
    "trainer.progress_bar=false",
    "trainer.epochs=2",
    "trainer.max_steps_per_epoch=3",
    "trainer.checkpoint_every_steps=2",
    "trainer.eval_every=1",
    "eval.recall_at=[1,2]",
    "eval.untrained=false",
]
CRASH_AT = 4  # the 5th step, the 2nd of epoch 2; the last checkpoint was written after the 4th


@pytest.fixture(scope="module", autouse=True)
def centre_pull():
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(METHODS._items, "centre_pull", CentrePull)
        yield


def config(case: str):
    return load_config(QUICKSTART, [*COMMON, *CASES[case]])


def crash_after_step(monkeypatch, at: int) -> None:
    """Any method: the step hook of the run's method raises after optimiser step ``at``."""
    setup = Trainer._setup

    def crashing_setup(self):
        setup(self)
        hook = self.method.after_step

        def after_step(model, step):
            hook(model, step)
            if step == at:
                raise RuntimeError("simulated crash")

        self.method.after_step = after_step

    monkeypatch.setattr(Trainer, "_setup", crashing_setup)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Per case: an uninterrupted run, and one that crashed mid-epoch and was resumed."""
    out = {}
    for case in CASES:
        root = tmp_path_factory.mktemp(case.split()[0])
        straight = Trainer(config(case), root / "straight").fit()
        with pytest.MonkeyPatch.context() as mp:
            crash_after_step(mp, CRASH_AT)
            with pytest.raises(RuntimeError, match="simulated crash"):
                Trainer(config(case), root / "resumed").fit()
        crashed = load_checkpoint(root / "resumed" / "checkpoints" / "last.pt")
        resumed = Trainer(config(case), root / "resumed", resume=True).fit()
        out[case] = {"root": root, "straight": straight, "resumed": resumed, "crashed": crashed}
    return out


def test_the_matrix_covers_every_registered_method():
    assert {config(case).method["name"] for case in CASES} >= set(METHODS.names())


CASE_IDS = list(CASES)


@pytest.mark.parametrize("case", CASE_IDS)
def test_resume_mid_epoch_reproduces_the_uninterrupted_run(runs, case):
    run = runs[case]
    assert run["crashed"]["global_step"] == CRASH_AT and run["crashed"]["batch_in_epoch"] == 1
    assert run["straight"]["status"] == run["resumed"]["status"] == "completed"
    a = load_checkpoint(run["root"] / "straight" / "checkpoints" / "last.pt")
    b = load_checkpoint(run["root"] / "resumed" / "checkpoints" / "last.pt")
    for part in ("model", "method"):
        assert a[part].keys() == b[part].keys()
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    assert [h["metrics"] for h in run["resumed"]["history"]] == [h["metrics"] for h in run["straight"]["history"]]


def cli_json(capsys, *args) -> dict:
    capsys.readouterr()
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("case", CASE_IDS)
@pytest.mark.parametrize("which", ["last", "best"])
def test_eval_agrees_with_the_trainer_and_the_api(runs, case, which, capsys):
    run_dir = runs[case]["root"] / "straight"
    metrics = runs[case]["straight"]
    recorded = metrics["test"] if which == "last" else metrics["best"]["metrics"]
    cli = cli_json(capsys, "eval", str(run_dir), "--checkpoint", which)
    assert cli["epoch"] == (2 if which == "last" else metrics["best"]["epoch"])
    # every metric the trainer recorded; a best checkpoint from before the last epoch was evaluated
    # as unfinished, so the finished-model extras (refined_*, diag_*) are only in the CLI's output
    assert set(recorded) <= set(cli["metrics"])
    assert {k: cli["metrics"][k] for k in recorded} == pytest.approx(recorded, abs=1e-9)
    api = dmlkit.load_run(run_dir, which).evaluate()
    assert api == pytest.approx(cli["metrics"], abs=1e-9)


@pytest.mark.parametrize("case", CASE_IDS)
def test_embed_writes_what_the_api_computes(runs, case, tmp_path, capsys):
    run_dir = runs[case]["root"] / "straight"
    for which in ("last", "best"):
        out = tmp_path / f"{which}.npz"
        assert main(["embed", str(run_dir), "--checkpoint", which, "-o", str(out)]) == 0
        saved = np.load(out)
        run = dmlkit.load_run(run_dir, which)
        api = run.embed(run.dataset("test"))
        assert np.array_equal(saved["embeddings"], api.embeddings) and np.array_equal(saved["labels"], api.labels)
        assert saved["embeddings"].shape == (len(saved["paths"]), run.facts.embedding_dim)
