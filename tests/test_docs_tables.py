"""The docs' results tables are rendered from the JSON that produced them (benchmarks/docs_tables.py)."""

import importlib.util
import json

import pytest

from paths import ROOT

spec = importlib.util.spec_from_file_location("docs_tables", ROOT / "benchmarks" / "docs_tables.py")
docs_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(docs_tables)

RESULTS = {
    "configs": {
        "a.yaml": {
            "completed": 2,
            "summary": {"recall@1": {"mean": 0.5, "std": 0.1}},
            "train_time_s": [10.0, 20.0],
            "last_train_logs": {"0": {"train/sigma": 1.0}, "1": {"train/sigma": 0.5}},
            "untrained_summary": {"recall@1": {"mean": 0.125, "std": 0.025}},
        },
        "b.yaml": {"completed": 1, "summary": {"recall@1": {"mean": 0.25, "std": None}}, "train_time_s": [None]},
    }
}


def test_a_table_against_a_hand_rendering():
    table = docs_tables.render(
        RESULTS, [("a.yaml", "A"), ("b.yaml", "B")],
        [("recall@1", "R@1"), ("train/sigma", "σ"), ("time", "training"), ("seeds", "n"), ("nmi", "NMI")], "doc",
    )  # fmt: skip
    assert table == (
        "| run | R@1 | σ | training | n | NMI |\n|---|---|---|---|---|---|\n"
        "| A | 0.500 ± 0.100 | 0.750 | 15 s | 2 | n/a |\n| B | 0.250 | — | n/a | 1 | n/a |\n"
    )


def test_a_stale_table_is_found_and_rewritten(tmp_path, monkeypatch):
    (tmp_path / "r.json").write_text(json.dumps(RESULTS))
    doc = tmp_path / "doc.md"
    declaration = "<!-- table: r.json\nrows: a.yaml = A\ncolumns: recall@1 = R@1\n-->\n"
    doc.write_text(f"text\n{declaration}| typed |\n<!-- /table -->\n")
    monkeypatch.setattr(docs_tables, "ROOT", tmp_path)
    assert docs_tables.main(["--check", str(doc)]) == 1
    assert docs_tables.main([str(doc)]) == 0 and docs_tables.main(["--check", str(doc)]) == 0
    assert "| A | 0.500 ± 0.100 |" in doc.read_text()
    doc.write_text("<!-- table: r.json\nrows: c.yaml = C\ncolumns: recall@1 = R@1\n-->\n<!-- /table -->\n")
    with pytest.raises(SystemExit, match="'c.yaml' is not in its JSON"):
        docs_tables.main([str(doc)])
    doc.write_text("<!-- table: gone.json\nrows: a.yaml = A\ncolumns: recall@1 = R@1\n-->\n<!-- /table -->\n")
    with pytest.raises(SystemExit, match="doc.md: the JSON of a table, gone.json, does not exist"):
        docs_tables.main([str(doc)])


def test_a_table_may_join_the_configs_of_several_json_files(tmp_path, monkeypatch):
    (tmp_path / "r.json").write_text(json.dumps({"configs": {"a.yaml": RESULTS["configs"]["a.yaml"]}}))
    (tmp_path / "s.json").write_text(json.dumps({"configs": {"b.yaml": RESULTS["configs"]["b.yaml"]}}))
    doc = tmp_path / "doc.md"
    doc.write_text(
        "<!-- table: r.json, s.json\nrows: a.yaml = A; b.yaml = B\ncolumns: recall@1 = R@1\n-->\n<!-- /table -->\n"
    )
    monkeypatch.setattr(docs_tables, "ROOT", tmp_path)
    assert docs_tables.main([str(doc)]) == 0
    assert "| A | 0.500 ± 0.100 |\n| B | 0.250 |" in doc.read_text()
    doc.write_text("<!-- table: r.json, r.json\nrows: a.yaml = A\ncolumns: recall@1 = R@1\n-->\n<!-- /table -->\n")
    with pytest.raises(SystemExit, match="two of a table's JSON files are named r.json"):
        docs_tables.main([str(doc)])


def test_a_config_in_two_json_files_is_named_by_its_file(tmp_path, monkeypatch):
    other = {**RESULTS["configs"]["a.yaml"], "summary": {"recall@1": {"mean": 0.75, "std": None}}}
    (tmp_path / "r.json").write_text(json.dumps({"configs": {"a.yaml": RESULTS["configs"]["a.yaml"]}}))
    (tmp_path / "s.json").write_text(json.dumps({"configs": {"a.yaml": other}}))
    monkeypatch.setattr(docs_tables, "ROOT", tmp_path)
    doc = tmp_path / "doc.md"
    spec = "<!-- table: r.json, s.json\nrows: {rows}\ncolumns: recall@1 = R@1\n-->\n<!-- /table -->\n"
    doc.write_text(spec.format(rows="a.yaml@r = A; a.yaml@s = A'; a.yaml:untrained@s = A untrained"))
    assert docs_tables.main([str(doc)]) == 0
    assert "| A | 0.500 ± 0.100 |\n| A' | 0.750 |\n| A untrained | 0.125 ± 0.025 |" in doc.read_text()
    doc.write_text(spec.format(rows="a.yaml = A"))
    with pytest.raises(SystemExit, match=r"'a.yaml' is in more than one of its JSON files \(r, s\); name one as"):
        docs_tables.main([str(doc)])
    doc.write_text(spec.format(rows="a.yaml@t = A"))
    with pytest.raises(SystemExit, match="a.yaml@t: no JSON file t.json among its sources"):
        docs_tables.main([str(doc)])


def test_the_docs_tables_match_their_json():
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    assert docs_tables.main(["--check", *map(str, files)]) == 0


def test_a_runs_metrics_json_is_a_source_with_its_own_corner(tmp_path, monkeypatch):
    metrics = {"status": "completed", "untrained": {"recall@1": 0.25}, "test": {"recall@1": 0.75}, "best": None}
    (tmp_path / "m.json").write_text(json.dumps(metrics))
    doc = tmp_path / "doc.md"
    spec = "<!-- table: m.json\ncorner: set\nrows: untrained = before; test = after\ncolumns: recall@1 = R@1\n-->\n"
    doc.write_text(spec + "<!-- /table -->\n")
    monkeypatch.setattr(docs_tables, "ROOT", tmp_path)
    assert docs_tables.main([str(doc)]) == 0
    assert "| set | R@1 |\n|---|---|\n| before | 0.250 |\n| after | 0.750 |\n" in doc.read_text()
    (tmp_path / "m.json").write_text(json.dumps({"history": []}))
    with pytest.raises(SystemExit, match="neither a compare_seeds result nor a run's metrics.json"):
        docs_tables.main([str(doc)])


def test_an_inline_value_is_rendered_from_its_json(tmp_path, monkeypatch):
    (tmp_path / "s.json").write_text(json.dumps({"losses": {"triplet": {"ratio": 0.93871, "range": [0.8, 0.98]}}}))
    doc = tmp_path / "doc.md"
    doc.write_text(
        "ratio <!-- value: s.json losses.triplet.ratio .3f -->0.5<!-- /value --> "
        "(from <!-- value: s.json losses.triplet.range.0 -->?<!-- /value -->)\n"
    )
    monkeypatch.setattr(docs_tables, "ROOT", tmp_path)
    assert docs_tables.main(["--check", str(doc)]) == 1
    assert docs_tables.main([str(doc)]) == 0
    assert "triplet.ratio .3f -->0.939<!-- /value --> (from <!-- value: s.json losses.triplet.range.0 -->0.8<" in (
        doc.read_text()
    )
    doc.write_text("<!-- value: s.json losses.npair.ratio -->x<!-- /value -->")
    with pytest.raises(SystemExit, match="value 'losses.npair.ratio' is not in s.json"):
        docs_tables.main([str(doc)])


def test_the_untrained_row_of_a_config():
    table = docs_tables.render(RESULTS, [("a.yaml:untrained", "U"), ("a.yaml", "A")], [("recall@1", "R@1")], "doc")
    assert table.endswith("| U | 0.125 ± 0.025 |\n| A | 0.500 ± 0.100 |\n")
    with pytest.raises(SystemExit, match="expected CONFIG or CONFIG:untrained"):
        docs_tables.render(RESULTS, [("a.yaml:best", "B")], [("recall@1", "R@1")], "doc")


def test_a_typed_results_table_must_say_why():
    table = "| run | R@1 |\n|---|---|\n| A | 0.500 ± 0.100 |\n"
    assert docs_tables.undeclared_tables(f"text\n\n{table}") == [3]
    assert docs_tables.undeclared_tables(f"<!-- typed: ran on a GPU; its JSON was not kept -->\n{table}") == []
    assert docs_tables.undeclared_tables("| metric | key |\n|---|---|\n| NMI | `nmi` |\n") == []
    declared = "<!-- table: r.json\nrows: a.yaml = A\ncolumns: recall@1 = R@1\n-->\n" + table + "<!-- /table -->\n"
    assert docs_tables.undeclared_tables(declared + "\n" + table) == [10]
    # a marker further up does not cover a later table
    marked = f"<!-- typed: a GPU run -->\n{table}\n<!-- value: r.json k -->1<!-- /value -->\n\n{table}"
    assert docs_tables.undeclared_tables(marked) == [8]
