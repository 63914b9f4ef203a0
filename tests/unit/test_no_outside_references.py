"""The repository stands alone: no tracked file points at documents or data outside it.

Every tracked text file (``git ls-files``; binary files skipped) is searched for references to documents that only
existed on the machines the project was developed on (the paper and stack notes, machine paths such as the working
directory, the shared data folder). The paper facts the code relies on live in ``docs/PAPER_NOTES.md``; every
``docs/PAPER_NOTES.md §N`` citation must name a numbered heading of that file.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOTES = "docs/PAPER_NOTES.md"

# Spelled in pieces so that this file does not match itself.
FORBIDDEN = [
    "PAPER" + ".md",
    "STACK" + ".md",
    "ANCHORS" + ".md",
    "/" + "work/",
    ".." + "/shared",
    "shared" + "/data",
]
FORBIDDEN_RE = re.compile("|".join(re.escape(p) for p in FORBIDDEN))
# The notes file, docs/PAPER_NOTES.md, does not match any of these patterns.

# A citation: the notes' file name followed by one or more section numbers ("§3–§5", "§13, §14.1", "§19 item 7").
CITATION_RE = re.compile(re.escape(NOTES) + r"`?((?:[\s,;–\-]*(?:and\s+)?§\d+(?:\.\d+)*)+)")
SECTION_RE = re.compile(r"§(\d+(?:\.\d+)*)")
HEADING_RE = re.compile(r"^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s", re.M)


def tracked_text_files() -> list[tuple[str, str]]:
    """(path, text) of every tracked file that exists in the work tree and is not binary."""
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True).stdout
    files = []
    for name in out.decode().split("\0"):
        if not name:
            continue
        path = REPO / name
        if not path.is_file():  # deleted in the work tree, or a submodule
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue
        try:
            files.append((name, data.decode("utf-8")))
        except UnicodeDecodeError:
            continue  # not text
    return files


def test_no_tracked_file_points_outside_the_repository():
    hits = []
    for name, text in tracked_text_files():
        for lineno, line in enumerate(text.splitlines(), 1):
            m = FORBIDDEN_RE.search(line)
            if m:
                hits.append(f"{name}:{lineno}: {m.group(0)!r} in {line.strip()[:160]}")
    assert not hits, "references to documents or paths outside the repository:\n" + "\n".join(hits)


def notes_sections() -> set[str]:
    return set(HEADING_RE.findall((REPO / NOTES).read_text()))


def test_paper_notes_citations_name_existing_sections():
    sections = notes_sections()
    assert {"0", "3.1", "7.1", "14.1", "14.2", "15", "16"} <= sections  # the headings parse at all
    bad, n = [], 0
    for name, text in tracked_text_files():
        for lineno, line in enumerate(text.splitlines(), 1):
            for m in CITATION_RE.finditer(line):
                for sec in SECTION_RE.findall(m.group(1)):
                    n += 1
                    if sec not in sections:
                        bad.append(f"{name}:{lineno}: §{sec} is not a heading of {NOTES}")
    assert n > 20, f"only {n} citations of {NOTES} found: the citation pattern is broken"
    assert not bad, "\n".join(bad)


def test_citation_pattern_reads_ranges_and_lists():
    line = "see docs/PAPER_NOTES.md §3–§5 and docs/PAPER_NOTES.md §13, §14.1; also (docs/PAPER_NOTES.md §19 item 7)"
    found = [s for m in CITATION_RE.finditer(line) for s in SECTION_RE.findall(m.group(1))]
    assert found == ["3", "5", "13", "14.1", "19"]
    assert FORBIDDEN_RE.search("x " + "PAPER" + ".md §3") and not FORBIDDEN_RE.search(NOTES + " §3")
