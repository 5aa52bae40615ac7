"""Explanations written by a language model behind any OpenAI-compatible chat-completions API.

Uses the official ``openai`` client with retries off: the worker decides what to do on failure
(fall back to the template), and a retry loop inside a rate-limited worker would only add latency.
"""
from __future__ import annotations

import json
import os
import re

import openai

from object_permanence.core.explain.base import Explanation, ExplanationRequest, ExplainerError
from object_permanence.core.explain.template import explanation_text
from object_permanence.core.persistence.evidence import ungrounded

SYSTEM_PROMPT = (
    "You explain the decisions of a persistence filter in a stereo camera tracker. The filter keeps "
    "tracks of real, persistent objects (also while they are hidden, as 'ghosts') and filters out "
    "transient ones such as reflections, glare, flicker and single-frame false positives. Given the facts "
    "of one decision as JSON, write 2-3 short plain sentences for a robotics engineer saying why the track "
    "was kept or filtered: the score, the frames the model's attention weighted most (top_frames, "
    "attention_focus_frames) and what happened in them (matched with a confidence, occluded, stereo_mismatch: "
    "no partner in the other view, confidence_dip), and the runner-up evidence. Frames are numbered 1.. "
    "within the track's history, oldest first. If attention_model is false, say that no attention model ran "
    "and do not claim which frames mattered. Use only numbers that appear in the JSON, written as they appear "
    "there; compute nothing new (no sums, differences, percentages). No preamble, no lists, no speculation "
    "beyond the facts."
)
# Placeholder key for OpenAI-compatible local servers (vLLM, llama.cpp, Ollama) that ignore keys;
# the client refuses to start without one.
NO_KEY = "no-key"
# Key-like tokens a server may echo in an error ("Incorrect API key provided: sk-ab***wxyz").
KEY_LIKE = re.compile(r"\bsk-[A-Za-z0-9_\-*.]+")


class OpenAIExplainer:
    """Explains a decision with one chat-completion call.

    Args:
        model: model name as the server knows it, e.g. ``"gpt-4o-mini"``.
        base_url: API root, e.g. ``"http://127.0.0.1:8000/v1"``; None for the OpenAI default.
        api_key: API key; None reads ``OPENAI_API_KEY``. With a base_url and no key at all, a
            dummy key "no-key" is sent (local servers ignore it).
        timeout_s: seconds for the whole request; a slower answer raises ExplainerError.
        max_tokens: cap on the answer length, tokens.
        temperature: sampling temperature, [0, 2].

    Attributes:
        endpoint: the API root requests actually go to (base_url, else the client's
            ``OPENAI_BASE_URL`` or default), named in errors and logs; the key never is.

    Raises:
        ValueError: empty model, non-positive timeout_s or max_tokens, temperature outside [0, 2],
            or no api_key and no base_url (the OpenAI service needs a key).
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 5.0,
        max_tokens: int = 120,
        temperature: float = 0.2,
    ) -> None:
        if not model:
            raise ValueError(f"model must be a non-empty model name, got {model!r}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0 seconds, got {timeout_s!r}")
        if max_tokens <= 0:
            raise ValueError(f"max_tokens must be > 0, got {max_tokens!r}")
        if not 0.0 <= temperature <= 2.0:
            raise ValueError(f"temperature must be in [0, 2], got {temperature!r}")
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        if not key:
            if not base_url:
                raise ValueError("api_key is not set (neither passed nor in OPENAI_API_KEY) and no base_url is given")
            key = NO_KEY
        self.model = model
        self.base_url = base_url
        self._key = key
        self.max_tokens = int(max_tokens)
        self.temperature = float(temperature)
        self.source = f"llm:{model}"
        self._client = openai.OpenAI(base_url=base_url, api_key=key, timeout=float(timeout_s), max_retries=0)
        # The URL requests actually go to: base_url, else OPENAI_BASE_URL, else the OpenAI API.
        self.endpoint = str(self._client.base_url).rstrip("/")

    def _redact(self, text: str) -> str:
        """``text`` without the API key or anything that looks like one."""
        if self._key and self._key != NO_KEY:
            text = text.replace(self._key, "***")
        return KEY_LIKE.sub("sk-***", text)

    def explain(self, request: ExplanationRequest) -> Explanation:
        """Ask the model with the request's facts; return its first choice, stripped, when every
        number and frame index in it is one of the facts (:func:`evidence.ungrounded`). A reply
        that invents one is rejected: the template's text of the same facts is returned instead,
        its source saying so (``"template (llm:<model> reply rejected: ungrounded 0.97)"``) and
        the reply kept in ``rejected_reply``.

        Raises:
            ExplainerError: on any API, HTTP, timeout or decoding error, or an empty answer;
                the message names the server (:attr:`endpoint`) and the cause, never the key.
        """
        where = self.endpoint
        facts = request.facts()
        try:
            response = self._client.chat.completions.create(
                model=self.model,
                messages=[
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": json.dumps(facts)},
                ],
                max_tokens=self.max_tokens,
                temperature=self.temperature,
            )
        except (openai.OpenAIError, ValueError) as exc:  # ValueError: a body that is not JSON
            text = f"explainer request to {where} failed: {type(exc).__name__}: {exc}"
            raise ExplainerError(self._redact(text)) from exc
        choices = getattr(response, "choices", None)
        text = (choices[0].message.content or "").strip() if choices else ""
        if not text:
            raise ExplainerError(f"explainer request to {where} returned an empty answer")
        bad = ungrounded(text, facts)
        if bad:
            return Explanation(request=request, text=explanation_text(facts),
                               source=f"template ({self.source} reply rejected: ungrounded {', '.join(bad)})",
                               rejected_reply=text)
        return Explanation(request=request, text=text, source=self.source)
