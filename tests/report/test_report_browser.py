"""End to end: two tiny runs, `dmlkit report` of each and of both, opened in headless Chromium."""

import json
import shutil
import subprocess

import pytest

from dmlkit.cli.main import main
from paths import QUICKSTART

pytestmark = pytest.mark.slow

BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files"]

# A page that opens the report in a frame and writes what it finds into its own DOM, read by --dump-dom.
PROBE = """<!doctype html><html><body><iframe id="f" src="{report}" style="width:1200px;height:900px"></iframe>
<script>
document.getElementById("f").addEventListener("load", () => {{
  const d = document.getElementById("f").contentDocument;
  const images = Array.from(d.images);  // after the frame's load event every image has loaded or failed
  const rows = (sel) => Array.from(d.querySelectorAll(sel + " tbody tr")).map(r => r.textContent.trim());
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({{images: images.length,
    undecoded: images.filter(i => !(i.complete && i.naturalWidth > 0)).length,
    comparison: rows("table.comparison"), run_tables: d.querySelectorAll("table.run-metrics").length,
    figures: Array.from(d.querySelectorAll("figcaption")).map(c => c.textContent.trim())}});
  document.body.appendChild(out);
}});
</script></body></html>"""


def browse(page, *extra, timeout=120):
    return subprocess.run(
        [BROWSER, *FLAGS, *extra, f"file://{page}"], capture_output=True, text=True, timeout=timeout, check=False
    )


def probe(tmp_path, report):
    page = tmp_path / f"probe-{report.stem}.html"
    page.write_text(PROBE.format(report=report.name))
    dom = browse(page, "--virtual-time-budget=10000", "--dump-dom").stdout
    text = dom.split('<pre id="probe">', 1)[1].split("</pre>", 1)[0]
    return json.loads(text.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))


def console_errors(report):
    log = browse(report, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom").stderr
    return [line for line in log.splitlines() if "CONSOLE" in line]


@pytest.mark.skipif(BROWSER is None, reason="no headless Chromium (apt-get install chromium; .ci/run installs it)")
def test_reports_open_in_a_browser_with_every_image_and_the_tables(tmp_path, capsys):
    runs = tmp_path / "runs"
    for seed in (0, 1):
        args = ["train", str(QUICKSTART), "--run-dir", str(runs / f"quickstart-s{seed}"), "--set", f"seed={seed}"]
        for override in ("trainer.epochs=2", "trainer.max_steps_per_epoch=4", "trainer.progress_bar=false"):
            args += ["--set", override]
        assert main(args) == 0
    both, one = tmp_path / "comparison.html", tmp_path / "run.html"
    assert main(["report", str(runs), "-o", str(both)]) == 0
    assert main(["report", str(runs / "quickstart-s0"), "-o", str(one)]) == 0
    assert main(["report", str(runs), "--markdown"]) == 0
    assert "| quickstart |" in capsys.readouterr().out  # one setting, named after its runs

    found = probe(tmp_path, both)
    assert found["images"] >= 4 and found["undecoded"] == 0  # overlaid curves, each run's curves and figures
    (row,) = found["comparison"]  # the two seeds form one row
    assert row.startswith("quickstart") and row.endswith("2")
    assert found["run_tables"] == 2
    assert "plots/retrieval.png" in found["figures"]
    single = probe(tmp_path, one)
    assert single["comparison"] == [] and single["run_tables"] == 1 and single["undecoded"] == 0
    assert console_errors(both) == [] and console_errors(one) == []

    # the probes can fail: a damaged image and a script error are seen
    broken = tmp_path / "broken.html"
    broken.write_text(
        one.read_text().replace("base64,iVBOR", "base64,AAAA", 1).replace("</main>", "<script>nope()</script>")
    )
    assert probe(tmp_path, broken)["undecoded"] == 1 and "nope is not defined" in "".join(console_errors(broken))

    shot = tmp_path / "comparison.png"
    browse(both, f"--screenshot={shot}", "--window-size=1280,1600", "--hide-scrollbars")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_a_folder_that_is_not_a_run_is_named(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "-o", str(tmp_path / "r.html")]) == 2
    assert "not a dmlkit run directory (no config.yaml or metrics.json)" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()
