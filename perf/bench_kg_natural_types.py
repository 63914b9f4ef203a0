"""Cost of the living natural-type rules on a synthetic dump (``perf/bench_kg.py``'s generator), one call each.

    taskset -c 0 .venv/bin/python perf/bench_kg_natural_types.py 200000

Prints, for ``most_sitelinks`` and ``nearest_common_name``, the total ``build_entities`` time and its steps.
"""
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "perf"))
sys.path.insert(0, str(REPO / "scripts"))

import bench_kg as b  # noqa: E402
from lib.kg.kg_entity_table import build_entities  # noqa: E402
from lib.kg.kg_selection import CLEANUP_DEFAULT  # noqa: E402
from lib.kg.kg_tables import read_dump_tables  # noqa: E402


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.nt.gz"
        b.synth_dump(path, n)
        tables = read_dump_tables(str(path), "en")
    for rule in ("most_sitelinks", "nearest_common_name"):
        steps: dict = {}
        t0 = time.perf_counter()
        ents = build_entities(tables, b.WORLD_ROOTS, b.LIVING_ROOTS, "en", 5, b.EXCLUDE, True, 28000, b.GENERIC,
                              timings=steps, living_rule=rule, living_type_min_sitelinks=20,
                              cleanup=CLEANUP_DEFAULT)
        print(f"{rule}: total {time.perf_counter() - t0:.1f} s, {len(ents)} entities, steps (s): "
              f"{ {k: round(v, 2) for k, v in steps.items()} }")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200000)
