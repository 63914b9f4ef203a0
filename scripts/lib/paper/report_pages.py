"""The report's HTML pages: standalone HTML twins of Markdown files and the one-page overview of a dataset.

* :func:`markdown_page`: the Markdown file rendered as a standalone HTML page (CommonMark with tables, by
  markdown-it-py; images it links are embedded as data URIs, so the page shows them inside ``report.html`` too).
* :func:`overview_page`: ``results/{dataset}/overview.html``: dataset size, query kinds, download status, each
  evaluated model's eval table and the figures, on one page.

The rule entry ``scripts/report_html.py`` picks the page by rule name (rules/report.smk).
"""

import base64
import html
import json
import re
from pathlib import Path

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60em; margin: 1.5em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; }
th { background: #eee; }
img { max-width: 100%; }
code { background: #f3f3f3; padding: 0 0.2em; }
"""

IMG_SRC = re.compile(r'(<img\s[^>]*src=")([^"]+)(")')


def data_uri(path: Path) -> str:
    mime = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "svg": "image/svg+xml"}.get(
        path.suffix.lower().lstrip("."), "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def embed_images(body: str, base: Path) -> str:
    """Replace ``<img src="relative.png">`` by the image's data URI (images that do not exist are left as they are:
    a broken image, not a failed report)."""

    def repl(m: re.Match) -> str:
        src = html.unescape(m.group(2))
        if re.match(r"^[a-z]+:", src):
            return m.group(0)
        p = base / src
        return m.group(1) + data_uri(p) + m.group(3) if p.is_file() else m.group(0)

    return IMG_SRC.sub(repl, body)


def render_markdown(text: str) -> str:
    """CommonMark + GitHub tables, raw HTML off (the Markdown comes from our own scripts, but never trust it)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


def page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def first_heading(md: str, default: str) -> str:
    m = re.search(r"^#\s+(.+)$", md, flags=re.M)
    return m.group(1).replace("`", "").strip() if m else default


def markdown_page(md_path: str | Path) -> str:
    """The standalone HTML twin of a Markdown file (images beside it embedded)."""
    md_path = Path(md_path)
    md = md_path.read_text()
    return page(first_heading(md, md_path.stem), embed_images(render_markdown(md), md_path.parent))


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(path: Path, caption: str) -> str:
    if not path.is_file():
        return ""
    return (f'<figure><img alt="{html.escape(caption)}" src="{data_uri(path)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _strip_title(md: str) -> str:
    return re.sub(r"^#\s+.*\n", "", md, count=1)


def overview_page(dataset: str, card_json: str | Path, card_dir: str | Path, eval_tables: dict[str, str],
                  eval_figures: dict[str, str], description: str = "") -> str:
    """One page per dataset: size, query kinds, download status, each model's eval table, the figures."""
    card = json.loads(Path(card_json).read_text())
    card_dir = Path(card_dir)
    dl = card.get("download", {})
    shards = card.get("shards", {})
    parts = [f"<h1>Dataset <code>{html.escape(dataset)}</code></h1>"]
    if description:
        parts.append(f"<p>{html.escape(description)}</p>")

    size_rows = [["images in the shards", card.get("images", "–")]]
    for split in ("train", "val"):
        if shards.get(f"n_{split}") is not None:
            size_rows.append([f"{split} split", shards[f"n_{split}"]])
    size_rows.append(["entities with images", card.get("n_entities", "–")])
    if "rows" in dl:
        size_rows.append(["URL rows downloaded", dl["rows"]])
    parts += ["<h2>Dataset size</h2>", _table(["quantity", "value"], size_rows)]

    kinds = card.get("query_kinds", [])
    total = sum(k.get("images", 0) for k in kinds) or 1
    parts += ["<h2>Query kinds</h2>",
              _table(["query kind", "images", "share"],
                     [[k.get("label", k.get("key")), k.get("images", 0), f"{100 * k.get('images', 0) / total:.1f} %"]
                      for k in kinds]),
              _figure(card_dir / "query_kinds.png", "images per query kind")]

    outcomes = dl.get("by_outcome", dl.get("by_status", {}))
    n = sum(outcomes.values()) or 1
    rate = dl.get("success_rate")
    parts += ["<h2>Download status</h2>",
              f"<p>Success rate: {'–' if rate is None else f'{100 * rate:.1f} %'}</p>",
              _table(["outcome", "rows", "share"], [[k, v, f"{100 * v / n:.1f} %"] for k, v in outcomes.items()]),
              _figure(card_dir / "download_status.png", "download outcome")]

    parts.append("<h2>Evaluation</h2>")
    if not eval_tables:
        parts.append("<p>No model trained on this dataset has been evaluated yet.</p>")
    for model, md_path in sorted(eval_tables.items()):
        md = Path(md_path).read_text()
        parts += [f"<h3>Model <code>{html.escape(model)}</code></h3>", render_markdown(_strip_title(md))]
        if model in eval_figures:
            parts.append(_figure(Path(eval_figures[model]), f"{model}: zero-shot results"))

    parts.append("<h2>More figures</h2>")
    for name, caption in (("root_classes", "images per root class"), ("top_entities", "most frequent entities"),
                          ("texts_per_image", "texts per image"), ("alt_text", "alt text"),
                          ("licences", "licences"), ("dedup", "dedup and decontamination")):
        parts.append(_figure(card_dir / f"{name}.png", caption))
    parts.append(f'<p>Full dataset card: <a href="card/card.html">card/card.html</a></p>')
    return page(f"EntityNet dataset {dataset}", "\n".join(p for p in parts if p))

