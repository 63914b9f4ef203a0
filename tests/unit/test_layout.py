"""The two kinds of module in ``scripts/`` keep apart, and the import arrows point one way.

*Rule entries* are ``scripts/<rule>.py``: each is the ``script:`` of a rule, ends with ``rule_entry(main, globals())``
and may import libraries. *Libraries* are ``scripts/lib/<stage>/<name>.py``: they never import a rule entry and hold
no rule entry of their own. ``scripts/_helpers.py`` (logging, atomic writes, the entry machinery) is the one module
both kinds import. Imports inside functions count too: a lazy import is still an arrow, and the kg_entities/kg_llm
loop was one. Which plausible regression fails here: a library importing a function from an entry, a new cycle, an
entry left without a rule, a module that grows past 600 lines, logic growing back into an entry.
"""
import ast
import re
from pathlib import Path

from conftest import REPO

SCRIPTS = REPO / "scripts"
MAX_MODULE_LINES = 600
MAX_ENTRY_LINES = 120  # an entry reads the snakemake object, calls libraries, writes outputs


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(SCRIPTS).with_suffix("").parts).removesuffix(".__init__")


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SCRIPTS.rglob("*.py"))}


MODULES = modules()
ENTRIES = {name for name in MODULES if "." not in name and name not in ("_helpers", "lib")}
LIBRARIES = {name for name in MODULES if name == "lib" or name.startswith("lib.")}


def imports_of(path: Path) -> set[str]:
    """The repository's own modules that ``path`` imports anywhere in its body (``from lib.x import y`` names the
    module ``lib.x.y`` when that is a module, else ``lib.x``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            candidates = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                          for a in node.names]
        else:
            continue
        found |= {c for c in candidates if c in MODULES}
    return found


GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def test_the_layout_is_found():
    assert {"kg_entities", "train", "evaluate", "download"} <= ENTRIES
    assert {"lib.common.workflow_config", "lib.kg.sparql_client", "lib.train.train_openclip"} <= LIBRARIES
    assert "lib.train.fast_data" in GRAPH["lib.train.train_openclip"]  # `from lib.train import fast_data` (lazy)
    assert "_helpers" in GRAPH["kg_entities"] and "lib.kg.sparql_client" in GRAPH["kg_dump"]


def test_libraries_import_no_rule_entry():
    bad = {lib: sorted(GRAPH[lib] & ENTRIES) for lib in LIBRARIES if GRAPH[lib] & ENTRIES}
    assert not bad, f"libraries importing rule entries (move the shared code into scripts/lib/): {bad}"


def test_no_entry_imports_another_entry():
    bad = {e: sorted(GRAPH[e] & ENTRIES) for e in ENTRIES if GRAPH[e] & ENTRIES}
    assert not bad, f"rule entries importing other entries (move the shared code into scripts/lib/): {bad}"


def test_no_import_cycles():
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(GRAPH[node]):
            if dep == node or state.get(dep) == "open":
                cycles.append(stack[stack.index(dep):] + [dep] if dep in stack else [node, dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert not cycles, f"import cycles: {cycles}"


def test_libraries_hold_no_rule_entry_and_entries_end_with_one():
    for name in LIBRARIES:
        text = MODULES[name].read_text()
        assert "rule_entry(" not in text and not re.search(r"^def main\(snakemake", text, re.M), \
            f"{name} is a library: its rule entry belongs in scripts/<rule>.py"
    for name in ENTRIES:
        assert "rule_entry(main, globals())" in MODULES[name].read_text(), f"scripts/{name}.py is no rule entry"


def test_every_entry_is_the_script_of_a_rule():
    used = set()
    for smk in (REPO / "rules").glob("*.smk"):
        used |= set(re.findall(r'"\.\./scripts/(\w+)\.py"', smk.read_text()))
    assert ENTRIES == used, f"entries without a rule: {sorted(ENTRIES - used)}; rules without an entry: " \
                            f"{sorted(used - ENTRIES)}"


def test_no_module_is_over_600_lines():
    long = {name: n for name, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by job): {long}"


def test_rule_entries_are_thin():
    fat = {name: n for name in ENTRIES if (n := len(MODULES[name].read_text().splitlines())) > MAX_ENTRY_LINES}
    assert not fat, f"rule entries over {MAX_ENTRY_LINES} lines (move the logic into scripts/lib/<stage>/): {fat}"
