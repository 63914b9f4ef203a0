"""The conda environments match their rules (static: conda cannot run here).

For every rule of ``rules/*.smk``: it names an ``envs/*.yaml`` and a script; every third-party module that the script
imports, directly or through the repository's own modules under ``scripts/`` (lazy imports inside functions
included: they run in some configuration), is provided by a package the environment lists, pinned to the version of
``requirements.lock.txt`` (the venv the tests run in). A missing package would only show as an ImportError in a
``--sdm conda`` run, possibly days into it.
"""
import ast
import re
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

SCRIPTS = REPO / "scripts"
# Import name -> distribution, where they differ (anything else: the import name is the distribution's name).
DISTRIBUTION = {"PIL": "pillow", "cv2": "opencv-python-headless", "open_clip": "open-clip-torch",
                "open_clip_train": "open-clip-torch", "yaml": "pyyaml", "sklearn": "scikit-learn",
                "markdown_it": "markdown-it-py"}
# Provided without the environment listing it: Snakemake's script preamble puts its own installation on sys.path.
PROVIDED = {"snakemake"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[norm(name.split("[")[0])] = version.strip()
    return pins


def rules() -> dict[str, tuple[str | None, str | None]]:
    """{rule: (env file name, script file name)} from the rule files' text."""
    out = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"\n(?=rule \w+:)", smk.read_text()):
            m = re.match(r"rule (\w+):", block)
            if not m:
                continue
            if not re.search(r"^\s+(script|shell|run|wrapper|notebook):", block, re.M):
                continue  # a target rule (inputs only, e.g. report_all): nothing runs, no environment
            env = re.search(r'conda:\s*\n\s*"\.\./envs/([\w.]+)"', block)
            script = re.search(r'script:\s*\n\s*"\.\./scripts/([\w.]+)"', block)
            out[m.group(1)] = (env and env.group(1), script and script.group(1))
    return out


def own_module(dotted: str) -> Path | None:
    """The file of one of the repository's own modules (``scripts/<name>.py`` or ``scripts/lib/.../<name>.py``,
    a package as its ``__init__.py``), or None for any other module."""
    base = SCRIPTS.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def third_party_imports(path: Path, seen: set[Path] | None = None) -> dict[str, str]:
    """{top-level module: "file:line"} of the non-stdlib modules ``path`` imports, following imports of the
    repository's own modules (``scripts/<name>.py`` and the ``lib`` package, ``from lib.x import y`` included)."""
    seen = {path} if seen is None else seen
    found: dict[str, str] = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names, members = [a.name for a in node.names], []
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names, members = [node.module], [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names + members:
            top = name.split(".")[0]
            if top in sys.stdlib_module_names:
                continue
            own = own_module(name)
            if own is not None:
                if own not in seen:
                    seen.add(own)
                    for mod, where in third_party_imports(own, seen).items():
                        found.setdefault(mod, where)
                continue
            if own_module(top) is not None or name in members:
                continue  # a name inside one of our modules (a function), or `from lib.x import` of a non-module
            found.setdefault(top, f"{path.name}:{node.lineno}")
    return found


def env_pins(env_file: str) -> dict[str, str | None]:
    """{distribution: pinned version or None} of an environment file's conda and pip dependencies."""
    spec = yaml.safe_load((REPO / "envs" / env_file).read_text())
    pins: dict[str, str | None] = {}
    for dep in spec.get("dependencies", []):
        entries = dep.get("pip", []) if isinstance(dep, dict) else [dep]
        for entry in entries:
            m = re.match(r"^\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*(?:==?\s*([^\s,;]+))?", entry)
            pins[norm(m.group(1))] = m.group(3)
    return pins


RULES = rules()


def test_rules_are_found():
    assert len(RULES) >= 20 and {"kg_entities", "train", "evaluate", "download"} <= set(RULES)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_rule_env_provides_every_import_of_its_script(rule):
    env_file, script = RULES[rule]
    assert env_file and (REPO / "envs" / env_file).exists(), f"rule {rule}: no conda: envs/*.yaml"
    assert script and (SCRIPTS / script).exists(), f"rule {rule}: no script: under scripts/"
    pins, locked = env_pins(env_file), lock()
    missing = []
    for module, where in sorted(third_party_imports(SCRIPTS / script).items()):
        if module in PROVIDED:
            continue
        dist = norm(DISTRIBUTION.get(module, module))
        assert dist in locked, f"{module} ({where}) is not in requirements.lock.txt: add it, or map it in DISTRIBUTION"
        if dist not in pins:
            missing.append(f"{dist}=={locked[dist]} (import {module}, {where})")
    assert not missing, f"rule {rule}: envs/{env_file} lacks {missing}"


@pytest.mark.parametrize("env_file", sorted(p.name for p in (REPO / "envs").glob("*.yaml")))
def test_env_pins_are_the_lock_versions(env_file):
    locked = lock()
    for dist, version in env_pins(env_file).items():
        if dist in ("python", "pip"):
            continue
        assert dist in locked, f"envs/{env_file}: {dist} is not in requirements.lock.txt"
        assert version == locked[dist], f"envs/{env_file}: {dist} pinned {version}, the lock has {locked[dist]}"


def test_import_scan_follows_local_modules_and_lazy_imports(tmp_path, monkeypatch):
    """The scanner itself: a lazy import in a local module that the script imports is found."""
    monkeypatch.setattr(sys.modules[__name__], "SCRIPTS", tmp_path)
    (tmp_path / "helper.py").write_text("import json\n\ndef f():\n    import requests\n")
    (tmp_path / "main.py").write_text("import os\nfrom helper import f\nfrom PIL import Image\n")
    assert third_party_imports(tmp_path / "main.py") == {"PIL": "main.py:3", "requests": "helper.py:4"}
