"""Run the reliability suite and summarise it: faults tried, survived, known bugs, artifacts lost.

    .venv/bin/python tests/reliability/summarise.py            # run, print the Markdown summary
    .venv/bin/python tests/reliability/summarise.py --write    # ... and put it into tests/reliability/README.md

Every fault scenario calls the ``record`` fixture after its assertions passed (one JSON line per scenario, in the
file named by ``$RELIABILITY_LOG``); pytest's JUnit XML gives the failed and expected-to-fail (known bug) tests.
A scenario "survived" when it recorded: the run either recovered with the fault-free result, or stopped with a
clear error and no artifact; "artifacts lost" counts complete artifacts missing or partial ones left in place.
"""
import argparse
import collections
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"


def run_suite(extra: list[str]) -> tuple[list[dict], list[dict], float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        log, junit = Path(tmp) / "records.jsonl", Path(tmp) / "junit.xml"
        env = dict(os.environ, RELIABILITY_LOG=str(log), NO_ALBUMENTATIONS_UPDATE="1", HF_HUB_OFFLINE="1")
        t0 = time.monotonic()
        rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(HERE),
                              f"--junitxml={junit}", *extra], cwd=REPO, env=env)
        wall = time.monotonic() - t0
        records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        cases = []
        for case in ET.parse(junit).getroot().iter("testcase"):
            outcome = "passed"
            for child in case:
                if child.tag in ("failure", "error"):
                    outcome = "failed"
                elif child.tag == "skipped":
                    outcome = "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
                    if outcome == "xfailed":
                        case.set("reason", child.get("message", ""))
            cases.append({"test": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                          "reason": case.get("reason", "")})
    return records, cases, wall, rc


def markdown(records: list[dict], cases: list[dict], wall: float, label: str | None = None) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "scripts", "rules", "tests"],
                           cwd=REPO, capture_output=True, text=True).stdout.strip()
    where = label or (f"commit {commit}{' + working-tree changes' if dirty else ''}" if commit else "a source tree")
    outcomes = collections.Counter(c["outcome"] for c in cases)
    failed = [c for c in cases if c["outcome"] == "failed"]
    xfailed = [c for c in cases if c["outcome"] == "xfailed"]
    lost = sum(int(r.get("artifacts_lost", 0)) for r in records)
    lines = [
        f"Run of {dt.datetime.now().strftime('%Y-%m-%d %H:%M')} on {where}"
        f" ({platform.python_version()}, {os.cpu_count()} cores, `summarise.py`): {len(cases)} tests in "
        f"{wall:.0f} s -- {outcomes['passed']} passed, {outcomes['failed']} failed, {outcomes['xfailed']} xfailed "
        "(known bugs, strict).",
        "",
        f"**Fault scenarios tried: {len(records) + len(failed) + len(xfailed)} · survived: {len(records)} · "
        f"known bugs (xfail): {len(xfailed)} · failed: {len(failed)} · artifacts lost: {lost}**",
        "",
        "| area | scenarios | recovered | refused cleanly | other survived | artifacts lost |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    by_area: dict[str, list[dict]] = collections.defaultdict(list)
    for r in records:
        by_area[r["area"]].append(r)
    for area, rs in sorted(by_area.items()):
        c = collections.Counter(r["outcome"] for r in rs)
        other = len(rs) - c["recovered"] - c["refused"]
        lines.append(f"| {area} | {len(rs)} | {c['recovered']} | {c['refused']} | {other} | "
                     f"{sum(int(r.get('artifacts_lost', 0)) for r in rs)} |")
    lines += ["", "| area | fault | outcomes (server-side requests; wait before the retry) |", "|---|---|---|"]
    grouped: dict[tuple, list[str]] = collections.defaultdict(list)
    for r in sorted(records, key=lambda r: (r["area"], r["fault"], r["outcome"] != "recovered", r["outcome"])):
        extra = [f"{r['requests']} req" if r.get("requests") not in (None, "") else "",
                 f"retry after {r['wait_s']} s" if r.get("wait_s") is not None else ""]
        extra = "; ".join(e for e in extra if e)
        grouped[(r["area"], r["fault"])].append(r["outcome"] + (f" ({extra})" if extra else ""))
    for (area, fault), outs in grouped.items():
        lines.append(f"| {area} | {fault} | {', '.join(outs)} |")
    if xfailed or failed:
        lines += ["", "Not survived:", ""]
        lines += [f"- xfail `{c['test']}`: {c['reason']}" for c in xfailed]
        lines += [f"- FAILED `{c['test']}`" for c in failed]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help="replace the figures section of README.md")
    ap.add_argument("--label", help="what was tested, instead of the git commit (e.g. for an exported tree)")
    args, extra = ap.parse_known_args()
    records, cases, wall, rc = run_suite(extra)
    text = markdown(records, cases, wall, args.label)
    if args.write:  # before printing: a closed stdout (| head) must not lose the figures
        readme = HERE / "README.md"
        old = readme.read_text()
        if BEGIN not in old or END not in old:
            raise SystemExit(f"{readme} has no {BEGIN} ... {END} section")
        head, rest = old.split(BEGIN, 1)
        readme.write_text(head + BEGIN + "\n" + text + END + rest.split(END, 1)[1])
    print(text)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
