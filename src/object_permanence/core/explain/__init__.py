"""Plain-language explanations of persistence-filter decisions, off the control loop.

``make_explainer`` picks the backend; ``ExplainerWorker`` runs it asynchronously and rate limited,
falling back to the offline ``TemplateExplainer`` when the language model fails, and behind a
``CircuitBreaker`` that stops asking a server that is down or slow.
"""
from __future__ import annotations

import os

from object_permanence.core.explain.base import Explainer, ExplainerError, Explanation, ExplanationRequest
from object_permanence.core.explain.breaker import BreakerEvent, BreakerState, CircuitBreaker
from object_permanence.core.explain.template import TemplateExplainer
from object_permanence.core.explain.worker import ExplainerWorker, TokenBucket

BACKENDS = ("template", "openai", "auto")

__all__ = [
    "BACKENDS",
    "BreakerEvent",
    "BreakerState",
    "CircuitBreaker",
    "Explainer",
    "ExplainerError",
    "ExplainerWorker",
    "Explanation",
    "ExplanationRequest",
    "TemplateExplainer",
    "TokenBucket",
    "make_explainer",
]


def make_explainer(
    backend: str,
    *,
    model: str = "gpt-4o-mini",
    base_url: str | None = None,
    api_key: str | None = None,
    timeout_s: float = 5.0,
    max_tokens: int = 120,
    temperature: float = 0.2,
) -> Explainer:
    """Build the explainer for ``backend``: "template", "openai", or "auto".

    "auto" is "openai" when an API key (argument or ``OPENAI_API_KEY``) or a base_url is
    configured, else "template". The other arguments are those of OpenAIExplainer and are
    ignored by the template. The openai package is imported only for the "openai" backend.

    Raises:
        ValueError: an unknown backend, or a bad OpenAIExplainer argument.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        backend = "openai" if (api_key or os.environ.get("OPENAI_API_KEY") or base_url) else "template"
    if backend == "template":
        return TemplateExplainer()
    from object_permanence.core.explain.openai_client import OpenAIExplainer  # the optional dependency

    return OpenAIExplainer(
        model=model,
        base_url=base_url,
        api_key=api_key,
        timeout_s=timeout_s,
        max_tokens=max_tokens,
        temperature=temperature,
    )
