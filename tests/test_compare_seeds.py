"""benchmarks/compare_seeds.py: runs, progress on stderr, the JSON summary and the HTML report."""

import json
import subprocess
import sys

import pytest

from paths import QUICKSTART, ROOT

SCRIPT = ROOT / "benchmarks" / "compare_seeds.py"


@pytest.mark.slow
def test_two_seeds_give_a_summary_progress_and_a_report(tmp_path):
    out = tmp_path / "cmp"
    args = [sys.executable, str(SCRIPT), str(QUICKSTART), "--seeds", "0", "1", "--parallel", "2", "--out-dir", str(out)]
    for item in ("trainer.epochs=1", "trainer.max_steps_per_epoch=3", "eval.untrained=false"):
        args += ["--set", item]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    entry = result["configs"][str(QUICKSTART)]
    assert entry["completed"] == 2 and result["failed"] == []
    r1 = [entry["seeds"][s]["recall@1"] for s in ("0", "1")]
    assert entry["summary"]["recall@1"]["mean"] == pytest.approx(sum(r1) / 2, abs=1e-4)
    progress = [line for line in done.stderr.splitlines() if line.startswith("[")]
    assert progress[0].startswith("[0/2 done, 1 running") and progress[-1].startswith("[2/2 done, 0 running")
    assert "finished quickstart-s" in progress[-1] and "recall@1" in progress[-1]
    report = (out / "report.html").read_text()
    assert "quickstart" in report and report.count('class="run"') == 2
