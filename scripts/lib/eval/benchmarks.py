"""Plan-time check of the benchmark sources (``benchmarks.<name>.source``): whether rule ``prepare_benchmark`` can
build a benchmark's root, and the message that says how to supply one that it cannot (ImageNet-1k is local only).

Used when the job graph is built (``workflow_config.benchmark_inputs``) and by the ``local`` source of
``benchmark_roots`` (rule ``prepare_benchmark``); standard library only.
"""

from pathlib import Path

IMAGENET_URL = "https://image-net.org/download.php"


def local_missing_message(name: str, src: dict, path) -> str:
    where = f"benchmarks.{name}.source.local_path"
    got = f" ({path!r} does not exist)" if path else " (not set)"
    how = ("give a clip_benchmark webdataset root (test/nshards.txt, test/N.tar, classnames.txt) or a folder per "
           "class, as a folder or a tar archive")
    if name.startswith("imagenet1k"):
        how = (f"its licence forbids redistribution: download the validation set from {IMAGENET_URL} and give "
               f"the folder (class folders <wnid>/, or a clip_benchmark wds root) or a tar archive of it")
    return (f"benchmark {name} cannot be prepared: it is supplied locally via {where}{got}; {how}. Or opt out "
            f"with evaluation.skip: [{name}]")


def can_prepare(name: str, bench: dict) -> str | None:
    """Plan-time check: ``None`` if the benchmark can be prepared, else the reason (message naming the key)."""
    src = bench.get("source")
    if not src:
        return (f"benchmark {name} has no benchmarks.{name}.source (and its root {bench.get('root')!r} is not on "
                f"disk); add a source or opt out with evaluation.skip: [{name}]")
    if src["type"] == "local" and not (src.get("local_path") and Path(src["local_path"]).exists()):
        return local_missing_message(name, src, src.get("local_path"))
    return None
