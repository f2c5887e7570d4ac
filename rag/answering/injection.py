"""Prompt-injection screening: text inside a document that tries to instruct a model.

Retrieved passages are data. A passage that addresses the model ("ignore all previous
instructions", "you are now ...", "reveal your system prompt") is kept out of an LLM's context
and named in the answer's `generator.screened_chunks`, so an operator can see which document
carries it. Patterns, not a model: they are cheap, explainable, and their misses are bounded by
the verifier downstream (a sentence an injected passage made up still has to be supported).

    injection_reason("Ignore all previous instructions and ...")
    # -> "ignore previous instructions"
"""

from __future__ import annotations

import re

# Each pattern names its target: the model, its instructions or its prompt. Policy text that
# "ignores the old rules" or staff who "act as the manager" must not match (tests pin both).
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "ignore previous instructions",
        re.compile(
            r"\b(ignore|disregard|forget|override)\b[^.\n]{0,30}\b(instructions|prompts?)\b|"
            r"\b(ignore|disregard|forget)\s+(all\s+|everything\s+)?(the\s+)?(above|preceding)\b"
            r"(?!\s+(rules?|polic(y|ies)|guidelines?|versions?|editions?|sections?))",
            re.I,
        ),
    ),
    (
        "role change",
        re.compile(
            r"\byou are (now|no longer) (an? )?(ai|assistant|model|chatbot|dan|unrestricted|"
            r"jailbroken|bound)\b|\bpretend (to be|you are)\b|\bfrom now on,? you (will|must)\b",
            re.I,
        ),
    ),
    (
        "prompt extraction",
        re.compile(
            r"\b(reveal|print|show|repeat|output)\b[^.\n]{0,30}\b(system|hidden) prompt\b", re.I
        ),
    ),
    (
        "instructions to the model",
        re.compile(
            r"\b(new|updated|additional) instructions\s*:|\b(assistant|AI|language model|LLM|"
            r"chatbot)\s*[,:]\s*(you must|always|never|do not|don't)\b|"
            r"\bdo not (cite|mention) (the |your )?sources?\b",
            re.I,
        ),
    ),
    (
        "chat markup",
        re.compile(
            r"<\|?(im_start|im_end|system|endoftext)\|?>|\[/?INST\]|^\s*#{2,}\s*(system|instruction)",
            re.I | re.M,
        ),
    ),
]


def injection_reason(text: str) -> str | None:
    """The first kind of instruction-to-a-model found in `text`, or None."""
    for reason, pattern in _PATTERNS:
        if pattern.search(text):
            return reason
    return None
