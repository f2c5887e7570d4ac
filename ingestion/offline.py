"""Make unstructured work with no network.

unstructured 0.27 downloads the spaCy model `en_core_web_sm` on first use (txt, html, eml) and
fails offline. Its text heuristics only need sentence boundaries and tokens, which a blank
English pipeline with a rule-based sentencizer provides from the spaCy wheel itself.
"""

from __future__ import annotations

import os
import threading

_done = False
_lock = threading.Lock()


def prepare_unstructured() -> None:
    """Idempotent: patch unstructured's spaCy loader before its first partition call."""
    global _done
    with _lock:
        if _done:
            return
        os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
        os.environ.setdefault("DO_NOT_TRACK", "true")
        os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
        import spacy
        from unstructured.nlp import tokenize

        def _blank_english() -> spacy.language.Language:
            nlp = spacy.blank("en")
            nlp.add_pipe("sentencizer")
            return nlp

        tokenize._load_spacy_model = _blank_english
        tokenize._get_nlp.cache_clear()
        _done = True
