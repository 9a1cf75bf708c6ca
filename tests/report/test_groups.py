"""Grouping runs by setting, mean ± std over seeds, labels, flagged runs and the paper's row."""

import statistics
from pathlib import Path

import pytest

from dmlkit.config import config_from_dict, config_to_dict
from dmlkit.report.groups import best_per_metric, differences, group_runs, metric_names, stat
from dmlkit.report.page import comparison_rows, render_markdown
from dmlkit.report.records import RunRecord

PAPER = {"row": "DVML, Table 1 (Cars196), Triplet", "metrics": {"recall@1": 0.585, "nmi": 0.562}}


def run(name, seed, r1, loss="triplet", status="completed", paper=None, **test):
    config = config_to_dict(config_from_dict({"seed": seed, "loss": {"name": loss}, "paper": paper}))
    metrics = {"status": status, "test": {"recall@1": r1, **test} if r1 is not None else None}
    return RunRecord(path=Path("/runs") / name, config=config, metrics=metrics)


def test_stat_against_statistics():
    values = [0.81, 0.79, 0.84]
    s = stat(values)
    assert (s.mean, s.std, s.n) == (pytest.approx(statistics.fmean(values)), pytest.approx(statistics.stdev(values)), 3)
    assert stat([0.5]).std is None and stat([]) is None and stat([float("nan"), 0.5]).n == 1


def test_runs_differing_only_in_the_seed_form_one_group_labelled_by_what_differs():
    runs = [run("t-s0", 0, 0.8), run("n-s0", 0, 0.6, loss="npair"), run("t-s1", 1, 0.7), run("n-s1", 1, 0.5, "npair")]
    groups = group_runs(runs)
    assert [g.label for g in groups] == ["t", "n"]  # their runs' names, in the order runs were given
    assert [g.differs for g in groups] == ["loss.name=triplet", "loss.name=npair"]
    assert [g.seeds for g in groups] == [[0, 1], [0, 1]]
    assert groups[0].metric("recall@1").mean == pytest.approx(0.75)
    assert groups[1].metric("recall@1").std == pytest.approx(statistics.stdev([0.6, 0.5]))
    assert best_per_metric(groups, ["recall@1"]) == {"recall@1": 0}


def test_one_setting_is_labelled_by_its_runs_name_without_the_seed():
    assert group_runs([run("omniglot_triplet-s0", 0, 0.8), run("omniglot_triplet-s1", 1, 0.7)])[0].label == (
        "omniglot_triplet"
    )


def test_settings_sharing_a_name_are_labelled_by_what_differs_and_an_unset_key_says_so():
    a = run("x-s0", 0, 0.8)
    b = run("x-s0", 0, 0.7)
    b.config["method"] = {**b.config["method"], "margin": 0.3}
    assert [g.label for g in group_runs([a, b])] == ["method.margin=(not set)", "method.margin=0.3"]


def test_a_run_that_did_not_complete_is_flagged_and_left_out_of_the_mean():
    groups = group_runs([run("a-s0", 0, 0.8), run("a-s1", 1, None, status="failed"), run("a-s2", 2, 0.6)])
    (group,) = groups
    assert group.metric("recall@1").mean == pytest.approx(0.7) and group.metric("recall@1").n == 2
    rows = comparison_rows(groups, ["recall@1"])
    assert rows[0]["flagged"] == ["a-s1: failed"] and rows[0]["seeds"] == 2


def test_the_paper_row_follows_its_setting_and_is_never_the_best():
    runs = [run("t-s0", 0, 0.5, paper=PAPER), run("n-s0", 0, 0.4, loss="npair")]
    groups = group_runs(runs)
    rows = comparison_rows(groups, metric_names(groups))
    assert [r["label"] for r in rows] == ["t", f"paper: {PAPER['row']}", "n"]
    assert [c.text for c in rows[1]["cells"]] == ["0.585"] and not rows[1]["cells"][0].best
    assert rows[0]["cells"][0].best


def test_metrics_are_ordered_recall_by_k_first():
    groups = group_runs([run("a-s0", 0, 0.8, **{"recall@10": 0.9, "recall@2": 0.85, "nmi": 0.5})])
    assert metric_names(groups) == ["recall@1", "recall@2", "recall@10", "nmi"]


def test_markdown_table():
    text = render_markdown([run("t-s0", 0, 0.8), run("t-s1", 1, 0.6), run("n-s0", 0, 0.5, loss="npair")])
    assert text == (
        "| run | R@1 | seeds |\n|---|---|---|\n"
        f"| t | **0.700 ± {statistics.stdev([0.8, 0.6]):.3f}** | 2 |\n"
        "| n | 0.500 | 1 |\n"
    )


def test_a_setting_is_named_by_at_most_a_few_keys_and_not_by_the_children_of_an_unset_section():
    a = {"loss": None, "method": {"name": "intra_batch", "heads": 2}}
    b = {"loss": {"name": "triplet", "margin": 0.2}, "method": {"name": "metric_loss"}}
    assert differences([a, b]) == [
        "loss=None; method.heads=2; method.name=intra_batch",
        "loss.margin=0.2; loss.name=triplet; method.heads=(not set); method.name=metric_loss",
    ]
    many = [{f"k{i}": i for i in range(8)}, {f"k{i}": -i - 1 for i in range(8)}]
    assert differences(many, limit=3)[0] == "k0=0; k1=1; k2=2; … 5 more"
