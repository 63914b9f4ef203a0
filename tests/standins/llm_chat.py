"""Stand-in (NOT a real LLM service) for an OpenAI-compatible chat-completions API, to test scripts/lib/kg/llm_client.py and
scripts/lib/kg/kg_llm.py offline.

``POST /v1/chat/completions`` with ``{"model", "messages", "response_format": {"type": "json_schema",
"json_schema": {"name", "schema"}}, …}`` answers ``{"id", "object": "chat.completion", "created", "model",
"choices": [{"index": 0, "message": {"role": "assistant", "content": "<json>"}, "finish_reason": "stop"}],
"usage": {…}}``, the wire format of the OpenAI API (field names from its public reference; extra fields a
client must ignore are included). The content is made by a deterministic :meth:`LLMChatStandin.answer` from the
schema name, the schema and the prompt (a responder function can replace it), always valid for the schema unless
``bad_answers`` asks for invalid ones first. With ``api_key`` set, ``Authorization: Bearer <key>`` is required
(401 otherwise); a body without ``model`` / ``messages`` gets 400. Faults as in :class:`base.StandinServer`
(``add_fault``: status with Retry-After, truncate, cut, slow, ...).
"""
from __future__ import annotations

import json
import re
import time
from typing import Callable

from .base import Recorded, Reply, StandinServer


def _entity_line(prompt: str, marker: str) -> str:
    """The line after the last ``marker`` line of the prompt ("Object:", "Entity:" …)."""
    parts = prompt.rsplit(marker + "\n", 1)
    return parts[1].split("\n", 1)[0] if len(parts) == 2 else ""


def _name_of(line: str) -> str:
    return re.split(r",| \(|:", line, maxsplit=1)[0].strip()


class LLMChatStandin(StandinServer):
    """Stand-in for ``POST /v1/chat/completions`` (see module docstring). ``bodies`` records each request body."""

    api_name = "llm-chat"

    def __init__(self, *, api_key: str | None = None, responder: Callable[[dict], str] | None = None,
                 bad_answers: int = 0, served_model: str | None = None, **kw):
        super().__init__(api_key=api_key, **kw)
        self.served_model = served_model  # the "model" answered, as OpenAI names the snapshot behind an alias
        self.responder = responder
        self.bad_answers = int(bad_answers)
        self.bodies: list[dict] = []

    # -- answers --------------------------------------------------------------------------------------------------
    def answer(self, body: dict) -> str:
        """A deterministic schema-valid answer:
        natural type + visuality: the LAST candidate id; 'non-visual' when the entity line mentions an idea or a
        concept; living natural type: the LAST id; is_<kind>: false for leather, oil, colour variants and named
        individuals ("famous"); attributes: per category one attribute named after the category's first word,
        with the query "<attribute> <entity name>" (two for Color)."""
        fmt = body["response_format"]["json_schema"]
        name, schema = fmt["name"], fmt["schema"]
        prompt = body["messages"][-1]["content"]
        if name == "natural_type_and_visuality":
            ids = schema["properties"]["natural_type"]["properties"]["id"]["enum"]
            line = _entity_line(prompt, "Entity information:").lower()
            cls = "non-visual" if ("idea" in line or "concept" in line) else "visual"
            return json.dumps({"natural_type": {"explanation": "closest common superclass", "id": ids[-1]},
                               "visuality_class": {"explanation": "can be photographed", "class": cls}})
        if name == "living_natural_type":
            return json.dumps({"id": schema["properties"]["id"]["enum"][-1]})
        if name.startswith("is_"):
            line = _entity_line(prompt, "Entity:").lower()
            bad = any(w in line for w in ("leather", " oil", "color variant", "famous"))
            return json.dumps({"answer": not bad})
        if name.startswith("attributes_"):
            ent = _name_of(_entity_line(prompt, "Object:")).lower()
            out = {}
            for key in schema["required"]:
                word = key.split("_")[0]
                items = [{"attribute": word, "search_query": f"{word} {ent}"}]
                if key == "color":
                    items.append({"attribute": "none", "search_query": "none"})  # junk the client must drop
                    items.append({"attribute": "spotted", "search_query": f"spotted {ent}"})
                out[key] = items
            return json.dumps(out)
        raise ValueError(f"stand-in has no answer for schema {name!r}")

    def respond(self, req: Recorded) -> Reply:  # GET: nothing here
        return Reply(405, {"error": {"message": "use POST", "type": "invalid_request_error"}})

    def respond_post(self, req: Recorded, body: bytes) -> Reply:  # POST /v1/chat/completions
        if req.path != "/v1/chat/completions":
            return Reply(404, {"error": {"message": f"no route {req.path}", "type": "invalid_request_error"}})
        if self.api_key and req.headers.get("authorization") != f"Bearer {self.api_key}":
            return Reply(401, {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                                         "code": "invalid_api_key"}})
        try:
            data = json.loads(body)
            assert isinstance(data["model"], str) and isinstance(data["messages"], list)
        except (ValueError, KeyError, AssertionError, TypeError):
            return Reply(400, {"error": {"message": "model and messages are required", "type":
                                         "invalid_request_error"}})
        with self._lock:
            self.bodies.append(data)
            bad = self.bad_answers > 0
            if bad:
                self.bad_answers -= 1
        content = '{"truncated": ' if bad else (self.responder or self.answer)(data)
        return Reply(200, {
            "id": f"chatcmpl-standin-{len(self.bodies)}", "object": "chat.completion", "created": int(time.time()),
            "model": self.served_model or data["model"], "system_fingerprint": "standin",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": len(json.dumps(data)) // 4, "completion_tokens": len(content) // 4,
                      "total_tokens": 0}})

    def fault_reply(self, fault) -> Reply:  # OpenAI's error shape
        headers = self.retry_after_header(fault)
        return Reply(fault.status, {"error": {"message": f"stand-in fault: HTTP {fault.status}"}}, headers)
