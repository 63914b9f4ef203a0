"""scripts/report_html.py and lib.paper.report_pages: Markdown twins as standalone HTML, and the per-dataset overview
page."""
import json
from html.parser import HTMLParser

import report_html as rh
from lib.paper import report_pages as rp

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8ff"
                    "ff3f0005fe02fea7d6a5b90000000049454e44ae426082")


class Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.cells, self._in = [], False

    def handle_starttag(self, tag, attrs):
        self._in = tag in ("td", "th")

    def handle_data(self, data):
        if self._in and data.strip():
            self.cells.append(data.strip())


def cells(html):
    p = Cells()
    p.feed(html)
    return p.cells


def test_markdown_page_renders_tables_and_embeds_images(tmp_path):
    (tmp_path / "plot.png").write_bytes(PNG)
    md = tmp_path / "card.md"
    md.write_text("# Dataset card: `demo`\n\n| a | b |\n|---|---|\n| x <script> | 9.1 |\n\n![p](plot.png)\n"
                  "![gone](missing.png)\n")
    html = rp.markdown_page(md)
    assert "<title>Dataset card: demo</title>" in html
    assert cells(html) == ["a", "b", "x <script>", "9.1"] and "<script>" not in html  # escaped, not raw HTML
    assert 'src="data:image/png;base64,' in html and 'src="missing.png"' in html


def test_overview_page_has_size_kinds_status_and_eval_tables(tmp_path):
    card_dir = tmp_path / "card"
    card_dir.mkdir()
    (card_dir / "query_kinds.png").write_bytes(PNG)
    card = {"images": 19, "n_entities": 15, "shards": {"n_train": 16, "n_val": 3},
            "download": {"rows": 20, "success_rate": 0.95, "by_outcome": {"success": 19, "error": 1}},
            "query_kinds": [{"key": "wd-noun-living", "label": "wd-noun-living", "images": 13},
                            {"key": "wd-noun-world", "label": "wd-noun-world", "images": 6}]}
    (card_dir / "card.json").write_text(json.dumps(card))
    table = tmp_path / "eval_table.md"
    table.write_text("# demo / tiny\n\n| benchmark | metric | value (%) |\n|---|---|---|\n| demo_heldout | acc1 | 9.1 |\n")
    html = rp.overview_page("demo", card_dir / "card.json", card_dir, {"tiny": str(table)}, {}, "the demo")
    c = cells(html)
    for seq in (["images in the shards", "19"], ["train split", "16"], ["wd-noun-living", "13", "68.4 %"],
                ["success", "19", "95.0 %"], ["demo_heldout", "acc1", "9.1"]):
        i = c.index(seq[0])
        assert c[i:i + len(seq)] == seq, (seq, c)
    assert "Success rate: 95.0 %" in html and "<h3>Model <code>tiny</code></h3>" in html
    assert html.count("data:image/png;base64,") == 1  # the one figure that exists
    empty = rp.overview_page("demo", card_dir / "card.json", card_dir, {}, {})
    assert "has been evaluated yet" in empty


def test_main_picks_the_page_by_rule_name_and_rejects_other_rules(tmp_path):
    from types import SimpleNamespace

    import pytest

    md = tmp_path / "eval_table.md"
    md.write_text("# demo / tiny\n\n| a |\n|---|\n| 1 |\n")
    out = tmp_path / "eval_table.html"
    job = SimpleNamespace(rule="eval_table_html", input=SimpleNamespace(md=str(md)), output=[str(out)], log=[])
    rh.main(job)
    assert "<title>demo / tiny</title>" in out.read_text() and cells(out.read_text()) == ["a", "1"]
    with pytest.raises(ValueError, match="serves the rules"):
        rh.main(SimpleNamespace(rule="model_report", input=job.input, output=[str(tmp_path / "x.html")], log=[]))
