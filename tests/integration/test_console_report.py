"""The demo's console output (quiet by default, ends with the summary) and its report pages, opened in a real
headless Chromium: the eval table's numbers must be in the rendered DOM.

Reuses the session's one demo run (the ``demo_run`` fixture, tests/integration/conftest.py). Chromium comes from
Debian's ``chromium`` package (``.ci/run`` installs it); without it these tests fail, naming the package."""
import base64
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from workflow_helpers import snakemake

pytestmark = [pytest.mark.slow, pytest.mark.integration]

MAX_CONSOLE_LINES = 150


class TableCells(HTMLParser):
    """Rows of every <table> in a document, as lists of cell texts."""

    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def chromium_dom(page: Path, tmp_path: Path) -> str:
    """The DOM of ``page`` after a real headless Chromium has loaded and rendered it."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "Chromium is missing: apt-get install chromium (.ci/run installs it)"
    r = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        f"--user-data-dir={tmp_path / 'chromium-profile'}", "--dump-dom", page.resolve().as_uri()],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and "<table" in r.stdout, r.stderr[-3000:]
    return r.stdout


def expected_rows(eval_csv: Path) -> list[list[str]]:
    """(benchmark, metric, value in % as the tables print it) of every evaluated row of an eval.csv."""
    ev = pd.read_csv(eval_csv)
    ok = ev[ev["status"] == "ok"]
    assert len(ok), "the demo evaluated nothing"
    return [[r.benchmark, r.metric, f"{100 * float(r.value):.1f}"] for r in ok.itertuples()]


def assert_eval_rows_in(dom: str, eval_csv: Path):
    parser = TableCells()
    parser.feed(dom)
    shown = [row[:3] for row in parser.rows]
    for row in expected_rows(eval_csv):
        assert row in shown, f"{row} not in the rendered tables: {shown}"


def test_default_console_is_short_and_ends_with_the_summary(demo_run):
    wd, out = demo_run.workdir, demo_run.stdout + demo_run.stderr
    lines = out.splitlines()
    assert len(lines) < MAX_CONSOLE_LINES, f"{len(lines)} console lines:\n" + out[-4000:]
    # per-page and per-entity detail is in the rule logs, not on the console
    assert "page 1: 0 triples" not in out and "page 1: 0 triples" in (wd / "logs/demo/kg_dump.log").read_text()
    assert "localrule" not in out and "Select jobs to execute" not in out and "Complete log(s)" not in out
    assert re.search(r"start train \(dataset=demo, model=tiny\)", out) and "done  evaluate:" in out
    tail = demo_run.stderr.rstrip().splitlines()
    start = max(i for i, line in enumerate(tail) if line == "EntityNet run finished.")
    summary = "\n".join(tail[start:])
    assert len(tail) - start <= 15, summary
    assert "results/demo/tiny/eval.csv" in summary and "results/demo/card/card.md" in summary
    assert "results/demo/overview.html" in summary and "make report" in summary
    acc1 = pd.read_csv(wd / "results/demo/tiny/eval.csv").set_index("metric").loc["acc1", "value"]
    assert f"demo_heldout acc1 {100 * acc1:.1f} %" in summary
    card = json.loads((wd / "results/demo/card/card.json").read_text())
    assert f"{card['images']} images" in summary


def test_overview_in_chromium_shows_the_eval_table(demo, tmp_path):
    dom = chromium_dom(demo / "results/demo/overview.html", tmp_path)
    assert_eval_rows_in(dom, demo / "results/demo/tiny/eval.csv")
    parser = TableCells()
    parser.feed(dom)
    card = json.loads((demo / "results/demo/card/card.json").read_text())
    assert ["images in the shards", str(card["images"])] in parser.rows
    for kind in card["query_kinds"]:
        assert [kind["label"], str(kind["images"])] in [r[:2] for r in parser.rows]
    assert dom.count("data:image/png;base64,") >= 4  # the figures travel inside the page


def test_report_renders_markdown_outputs_as_html(demo, tmp_path):
    r = snakemake(demo, "--cores", "1", "report_all", timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    r = snakemake(demo, "--report", "report_all.html", "--cores", "1", "report_all", timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    html = (demo / "report_all.html").read_text()
    entries = dict(re.findall(r'"(results/[^"]+)": \{"name": "[^"]+", "filename": "[^"]+".*?"mime_type": "([^"]+)"',
                              html))
    for page in ("results/demo/overview.html", "results/demo/card/card.html",
                 "results/demo/tiny/report/eval_table.html"):
        assert entries.get(page) == "text/html", (page, sorted(entries))
    assert not [p for p in entries if p.endswith(".md")], "Markdown outputs offered as downloads"
    # the eval table page exactly as the report carries it, rendered by Chromium
    m = re.search(r'"results/demo/tiny/report/eval_table.html": \{.*?"data_uri": "data:text/html;[^"]*base64,'
                  r'([A-Za-z0-9+/=]+)"', html)
    assert m, "eval_table.html is not embedded in the report"
    page = tmp_path / "eval_table_from_report.html"
    page.write_bytes(base64.b64decode(m.group(1)))
    assert_eval_rows_in(chromium_dom(page, tmp_path), demo / "results/demo/tiny/eval.csv")


def test_report_all_plans_the_runs_on_disk_and_renders_the_ablation_twin(tmp_path):
    """Without a demo run: results on disk decide what `report_all` holds; the ablation table's HTML twin is made
    by the real rule (other rules disallowed, so the Markdown on disk is taken as it is) and read in Chromium."""
    from workflow_helpers import make_workdir

    wd = make_workdir(tmp_path / "wd")
    md = wd / "results/paper/ablation_demo_tiny.md"
    md.parent.mkdir(parents=True)
    md.write_text("Alt-text ablation\n\n| run | ImageNet | Avg. |\n|---|---|---|\n| 0% alt text | 1.2 | *3.4* |\n"
                  "| 50% alt text | **5.6** | 7.8 |\n| 100% alt text | 9.0 | **12.3** |\n")
    for model in ("tiny", "tiny-alt0"):  # two evaluated models of the demo, one of them an ablation run
        (wd / f"results/demo/{model}").mkdir(parents=True)
        (wd / f"results/demo/{model}/eval.csv").write_text("x\n")
    (wd / "results/demo/nosuchmodel").mkdir()
    (wd / "results/demo/nosuchmodel/eval.csv").write_text("x\n")  # not a model of the config: left out

    dry = snakemake(wd, "-n", "--cores", "1", "report_all", timeout=300)
    assert dry.returncode == 0, (dry.stdout + dry.stderr)[-3000:]
    for target in ("results/demo/overview.html", "results/demo/card/card.html", "results/paper/ablation_demo_tiny.html",
                   "results/demo/tiny/report/eval_table.html", "results/demo/tiny-alt0/report/eval_table.html"):
        assert target in dry.stdout, target
    assert "nosuchmodel" not in dry.stdout

    r = snakemake(wd, "--cores", "1", "--allowed-rules", "ablation_html", "--", "results/paper/ablation_demo_tiny.html",
                  timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    parser = TableCells()
    parser.feed(chromium_dom(wd / "results/paper/ablation_demo_tiny.html", tmp_path))
    assert parser.rows == [["run", "ImageNet", "Avg."], ["0% alt text", "1.2", "3.4"], ["50% alt text", "5.6", "7.8"],
                           ["100% alt text", "9.0", "12.3"]]
