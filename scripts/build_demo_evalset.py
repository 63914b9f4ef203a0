"""Write an image list with labels as a clip_benchmark local webdataset (``wds/<name>`` layout).

Layout (clip_benchmark 1.6.2): ``DIR/test/nshards.txt``, ``DIR/test/0.tar`` … with ``<key>.<ext>`` + ``<key>.cls``,
``DIR/classnames.txt`` (label order), ``DIR/zeroshot_classification_templates.txt``. Used for the demo's held-out
photos (never in the search pool); the same function packs any labelled image folder.
"""

import csv
import logging
from pathlib import Path

from _helpers import configure_logging, rule_entry, write_text
from lib.data.shard_writer import tar_writer

log = logging.getLogger("entitynet.build_demo_evalset")


def read_labelled_list(tsv: str | Path) -> list[tuple[str, str]]:
    with open(tsv, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    if not rows or not {"local_file", "label"} <= set(rows[0]):
        raise ValueError(f"{tsv}: expected columns local_file and label")
    return [(r["local_file"], r["label"]) for r in rows]


def write_wds_classification(items: list[tuple[str, str]], image_root: str | Path, out_dir: str | Path,
                             templates: list[str]) -> list[str]:
    image_root, out_dir = Path(image_root), Path(out_dir)
    classes = sorted({label for _, label in items})
    index = {c: i for i, c in enumerate(classes)}
    (out_dir / "test").mkdir(parents=True, exist_ok=True)
    tmp = out_dir / "test" / ".0.tar.tmp"
    with tar_writer(tmp) as tw:
        for i, (rel, label) in enumerate(sorted(items)):
            path = image_root / rel
            if not path.exists():
                raise FileNotFoundError(f"evaluation image {path} is missing")
            tw.write({"__key__": f"{i:06d}", path.suffix.lower().lstrip("."): path.read_bytes(),
                      "cls": str(index[label]).encode()})
    tmp.replace(out_dir / "test" / "0.tar")
    write_text("1\n", out_dir / "test" / "nshards.txt")
    write_text("\n".join(classes) + "\n", out_dir / "classnames.txt")
    write_text("\n".join(templates) + "\n", out_dir / "zeroshot_classification_templates.txt")
    return classes


def main(snakemake) -> None:
    configure_logging(snakemake)
    items = read_labelled_list(snakemake.input.labels)
    classes = write_wds_classification(items, snakemake.input.images, snakemake.output.root,
                                       list(snakemake.params.templates))
    log.info("%d images, %d classes -> %s", len(items), len(classes), snakemake.output.root)


if __name__ == "__main__":
    rule_entry(main, globals())
