"""Query identity shared by the query builder (``query_builder``, rule ``build_queries``), the released-metadata
import (rule ``import_released_metadata``) and config validation: the query kinds, text normalisation and
``query_id``.

``query_id`` = first 16 hex digits of sha256("{kind}\\t{normalised text}"): independent of backend and of order, so
released and searched queries of the same (kind, text) join on it (docs/CONTRACTS.md).
"""

import hashlib
import re

#: the query kinds rule ``build_queries`` generates (``queries.kinds``, ``queries.max_per_kind`` keys)
KINDS = ["wd-noun-world", "wd-noun-living", "wordnet-noun-living", "wd-attrnoun-world", "wd-attrnoun-living",
         "wd-attr-world", "wd-attr-living"]


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", str(text)).strip().lower()


def query_id(kind: str, text: str) -> str:
    return hashlib.sha256(f"{kind}\t{normalise(text)}".encode()).hexdigest()[:16]
