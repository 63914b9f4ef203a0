"""JSON-constrained answers from any OpenAI-compatible chat-completions API, cached on disk.

One request is ``POST {base_url}/chat/completions`` with ``{"model", "messages", "temperature", ["top_p"],
["max_tokens"], "response_format": {"type": "json_schema", "json_schema": {"name", "strict": true, "schema"}}}``
(the structured-output form OpenAI, vLLM, llama.cpp's server, SGLang and others accept); the answer is
``choices[0].message.content``, parsed as JSON and validated against the schema.

Transport, cache and secrets come from :class:`http_cache.CachedClient`: every successful HTTP response is stored
under ``cache_dir`` keyed by (model name, prompt version, endpoint, exact request body) — so a rerun of the same
prompts sends no request at all, and a new model or prompt version never reads an old answer —, with bounded retries and backoff on 429 / 5xx / timeouts / broken bodies (``Retry-After`` honoured) and a
rate limit. The API key is read from the environment variable named in config (``api_key_env``), sent as
``Authorization: Bearer …``, never part of a cache key, a cache file or a log line.

An answer that is not valid JSON for the schema (a truncated or refused answer, a server that ignores
``response_format``) is asked again with ``seed`` = 1, 2, … (a different request, hence a different cache entry),
up to ``max_invalid_answers`` more times; then :class:`LLMAnswerError` is raised and callers fall back to the KG
result. The invalid responses stay cached too, so a rerun replays the same sequence without any request.
"""

import json
import logging
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Iterable

import jsonschema

from lib.common.http_cache import CachedClient, HttpClientError

log = logging.getLogger("entitynet.llm_client")


class LLMError(RuntimeError):
    """The LLM endpoint failed for good (HTTP error after retries, bad configuration)."""


class LLMAnswerError(LLMError):
    """Every attempt returned an answer that is not valid JSON for the requested schema."""


@dataclass
class LLMConfig:
    """Settings of one OpenAI-compatible endpoint (``datasets.<name>.llm`` in config)."""

    base_url: str
    model: str
    api_key_env: str | None = None
    temperature: float = 0.0
    top_p: float | None = None
    max_tokens: int | None = 2048
    timeout_s: float = 120.0
    max_retries: int = 4
    requests_per_second: float | None = None
    max_invalid_answers: int = 2
    workers: int = 4

    @classmethod
    def from_dict(cls, d: dict, where: str = "llm") -> "LLMConfig":
        """Build from a config mapping (unknown keys ignored), with clear errors for missing/bad values."""
        d = dict(d or {})
        for key in ("base_url", "model"):
            if not d.get(key):
                raise LLMError(f"{where}.{key} is required for the LLM modes (an OpenAI-compatible endpoint, "
                               f"e.g. base_url: https://api.openai.com/v1, model: gpt-4o-mini)")
        if not re.match(r"^https?://", str(d["base_url"])):
            raise LLMError(f"{where}.base_url {d['base_url']!r} is not an http(s) URL")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names and v is not None})

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"


def strip_fences(text: str) -> str:
    """Content without a surrounding Markdown code fence (some servers wrap JSON in ```json … ```)."""
    m = re.match(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", text, re.S)
    return m.group(1) if m else text


class ChatClient:
    """Cached, retrying, schema-validating chat-completions client (see module docstring)."""

    def __init__(self, config: LLMConfig, cache_dir: str | os.PathLike | None, *, environ=None,
                 session_factory: Callable | None = None, sleep=None, prompt_version: str | None = None):
        self.config = config
        # part of every cache key (with the model name and the exact body): bumping it re-asks every question even
        # where only the parsing of answers changed
        self.prompt_version = prompt_version
        self.served_models: set[str] = set()
        environ = os.environ if environ is None else environ
        self._key = None
        if config.api_key_env:
            self._key = environ.get(config.api_key_env)
            if not self._key:
                raise LLMError(f"llm.api_key_env names {config.api_key_env!r}, but that environment variable is "
                               "not set (the key is read from the environment only, never from config)")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._local = threading.local()
        self._clients: list[CachedClient] = []
        self._lock = threading.Lock()
        self._session_factory = session_factory
        self._sleep = sleep
        self.invalid_answers = 0

    def _client(self) -> CachedClient:
        c = getattr(self._local, "client", None)
        if c is None:
            kw = {}
            if self._session_factory is not None:
                kw["session"] = self._session_factory()
            if self._sleep is not None:
                kw["sleep"] = self._sleep
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            if self._key:
                headers["Authorization"] = f"Bearer {self._key}"
            c = CachedClient(self.cache_namespace, self.cache_dir,
                             requests_per_second=self.config.requests_per_second,
                             max_retries=self.config.max_retries, timeout_s=self.config.timeout_s,
                             secrets=[self._key] if self._key else [], secret_headers=["authorization"],
                             default_headers=headers, **kw)
            self._local.client = c
            with self._lock:
                self._clients.append(c)
        return c

    @property
    def cache_namespace(self) -> str:
        """The cache's backend name: ``llm-<model>[-p<prompt version>]`` (part of every cache key)."""
        return f"llm-{self.config.model}" + (f"-p{self.prompt_version}" if self.prompt_version else "")

    def stats(self) -> dict:
        """Requests sent, cache hits, retries and invalid answers so far (all threads), and the model names the
        server reported (``served_models``: the snapshot behind an alias such as ``gpt-4o``)."""
        out = {"requests": 0, "cache_hits": 0, "retries": 0, "cache_writes": 0}
        with self._lock:
            for c in self._clients:
                for k in out:
                    out[k] += c.stats[k]
        out["invalid_answers"] = self.invalid_answers
        out["served_models"] = sorted(self.served_models)
        return out

    def body(self, messages: list[dict], schema: dict, name: str, seed: int | None = None) -> str:
        """The exact request body (deterministic JSON: it is the cache key)."""
        req = {"model": self.config.model, "messages": messages, "temperature": self.config.temperature,
               "response_format": {"type": "json_schema",
                                   "json_schema": {"name": name, "strict": True, "schema": schema}}}
        if self.config.top_p is not None:
            req["top_p"] = self.config.top_p
        if self.config.max_tokens is not None:
            req["max_tokens"] = self.config.max_tokens
        if seed is not None:
            req["seed"] = seed
        return json.dumps(req, sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    def complete_json(self, messages: list[dict], schema: dict, name: str) -> dict:
        """The model's answer as a dict valid for ``schema``; raises LLMAnswerError / LLMError."""
        problem = "no attempt"
        for attempt in range(self.config.max_invalid_answers + 1):
            body = self.body(messages, schema, name, seed=attempt or None)
            try:
                resp = self._client().request_json("POST", self.config.url, body=body)
            except HttpClientError as e:
                raise LLMError(f"LLM endpoint {self.config.base_url} ({self.config.model}): {e}") from None
            if isinstance(resp, dict) and isinstance(resp.get("model"), str):
                with self._lock:
                    self.served_models.add(resp["model"])
            try:
                msg = resp["choices"][0]["message"]
                if msg.get("refusal"):
                    raise ValueError(f"refused: {str(msg['refusal'])[:200]}")
                content = msg.get("content")
                if not isinstance(content, str):
                    raise ValueError("no text content")
                answer = json.loads(strip_fences(content))
                jsonschema.validate(answer, schema)
                return answer
            except (KeyError, IndexError, TypeError, ValueError, jsonschema.ValidationError) as e:
                problem = f"{type(e).__name__}: {str(e)[:300]}"
                with self._lock:
                    self.invalid_answers += 1
                log.warning("LLM answer for %s not valid for its schema (attempt %d): %s", name, attempt + 1, problem)
        raise LLMAnswerError(f"{self.config.model}: no valid answer for {name} after "
                             f"{self.config.max_invalid_answers + 1} attempts; last problem: {problem}")

    def map_json(self, jobs: Iterable[tuple[list[dict], dict, str]]) -> list:
        """``complete_json`` for many (messages, schema, name) jobs, ``config.workers`` at a time, in order;
        a job whose answers stayed invalid yields its LLMAnswerError instead of a dict (LLMError propagates)."""
        def run(job):
            try:
                return self.complete_json(*job)
            except LLMAnswerError as e:
                return e

        jobs = list(jobs)
        if self.config.workers <= 1 or len(jobs) <= 1:
            return [run(j) for j in jobs]
        with ThreadPoolExecutor(max_workers=int(self.config.workers)) as pool:
            return list(pool.map(run, jobs))

    def close(self) -> None:
        with self._lock:
            for c in self._clients:
                c.close()
