"""What one download chunk produced, read back from img2dataset's output folders (rule ``download``'s results).

A chunk folder holds the first img2dataset pass and, when some failed row was retried at its next duplicate URL,
a ``retry/`` pass (``lib.data.chunk_download``). Readers (``build_shards``, ``dedup_decontaminate``) take both folders
(:func:`download_dirs`); :func:`row_outcomes` gives every input row exactly one final status and
:func:`failure_reason` a short category for it (the download status table and the dataset card).
"""

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

RETRY_DIR = "retry"
OPT_OUT_MARK = "X-Robots-Tag"
OUTCOME_COLUMNS = ["uid", "url", "status", "error_message", "retried", "retry_url", "first_status", "first_error"]


def pass_status(out: str | os.PathLike) -> pd.DataFrame:
    """Every input row of one img2dataset pass with ``uid, url, status, error_message`` (from the shard parquets)."""
    files = sorted(Path(out).glob("[0-9]*.parquet"))
    cols = ["uid", "url", "status", "error_message"]
    if not files:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
    df = pd.concat([pd.read_parquet(p, columns=cols) for p in files], ignore_index=True)
    df["error_message"] = df["error_message"].fillna("")
    return df


def download_dirs(chunk_dirs: Iterable[str | os.PathLike]) -> list[str]:
    """Every img2dataset output folder of the given chunk folders: each chunk, then its ``retry/`` if present."""
    dirs: list[str] = []
    for d in chunk_dirs:
        dirs.append(str(d))
        if (Path(d) / RETRY_DIR).is_dir():
            dirs.append(str(Path(d) / RETRY_DIR))
    return dirs


def row_outcomes(chunk_dirs: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """One row per input row of the chunks with its **final** outcome (columns ``OUTCOME_COLUMNS``).

    ``status``/``error_message`` are the retry pass's where the row was retried, else the first pass's;
    ``retried`` says whether a second URL was tried (``retry_url``); ``first_status``/``first_error`` keep the
    first attempt. A uid listed twice in one pass (never expected) keeps its first record.
    """
    parts = []
    for d in chunk_dirs:
        first = pass_status(d).drop_duplicates("uid")
        if (Path(d) / RETRY_DIR).is_dir():
            again = pass_status(Path(d) / RETRY_DIR).drop_duplicates("uid").rename(
                columns={"url": "retry_url", "status": "retry_status", "error_message": "retry_error"})
            first = first.merge(again, on="uid", how="left")
        else:
            first = first.assign(retry_url=None, retry_status=None, retry_error=None)
        parts.append(first)
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="bool" if c == "retried" else "object") for c in OUTCOME_COLUMNS})
    df = pd.concat(parts, ignore_index=True)
    retried = df["retry_status"].notna()
    return pd.DataFrame({
        "uid": df["uid"], "url": df["url"],
        "status": df["retry_status"].where(retried, df["status"]),
        "error_message": df["retry_error"].where(retried, df["error_message"]).fillna(""),
        "retried": retried.astype(bool), "retry_url": df["retry_url"].where(retried, None),
        "first_status": df["status"], "first_error": df["error_message"],
    })[OUTCOME_COLUMNS]


_REASONS = [  # (substring of img2dataset's error message, reason), first match wins
    (OPT_OUT_MARK, "opt-out (X-Robots-Tag)"),
    ("infinite loop", "redirect loop"),
    ("IncompleteRead", "incomplete body"),
    ("timed out", "timeout"),
    ("image area too large", "image area too large"),
    ("image too small", "image too small"),
    ("aspect ratio too large", "aspect ratio too large"),
    ("!buf.empty()", "empty body"),
    ("Image decoding error", "not a decodable image"),
    ("Connection refused", "connection refused"),
    ("Name or service not known", "DNS failure"),
    ("certificate", "TLS error"),
]


def failure_reason(status: str, error_message: str | None) -> str:
    """A short category for a row's final status: ``success``, ``HTTP 404``, ``redirect loop``, ``timeout``, ..."""
    if status == "success":
        return "success"
    msg = str(error_message or "")
    if msg.startswith("HTTP Error "):
        code = msg[len("HTTP Error "):].split(":", 1)[0].strip()
        if "infinite loop" not in msg:
            return f"HTTP {code}"
    for needle, reason in _REASONS:
        if needle in msg:
            return reason
    return f"{status}: other"
