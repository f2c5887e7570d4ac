"""What a question actually asks about: its content terms, and the specific ones among them.

"What tactics did Hannibal use at Zama in 202 BCE?" has content terms {tactic, hannib, use,
zama, 202, bce} and specific terms {hannib, zama, 202, bce}: names, numbers and codes. Evidence
that lacks a specific term (a passage about Cannae) does not answer the question, however
similar it looks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.retrieval.bm25 import tokenize

# Words that shape a question but say nothing about its subject.
QUESTION_WORDS = frozenset(
    tokenize(
        "what which who whom whose when where why how does do did done can could should would "
        "may might must shall will is are was were be been being has have had i me my we our "
        "you your tell explain describe list give name according please about there any some "
        "many much kind type types specific specifically exactly current currently get got gets "
        "need needs take happen happens from"
    )
)
_SPECIFIC = re.compile(r"\b(?:[A-Z][\w'-]*|\w*\d\w*|[A-Z]{2,}\w*)\b")
_QUOTED = re.compile(r"[\"“']([^\"”']{2,})[\"”']")
# A code: capital letters, then a digit (W50, A320, X7, ISO27001). Spelt the same wherever it is
# written, unlike a name (Bill, William) or a number (1,000; 1000; one thousand). An ordinal, a
# decade or a quantity with its unit (3rd, 1980s, 7pm, 100GB) starts with its digits, and a
# lower-case run into a number is a typo ("in a2002 film", HaluEval's gate rows): neither is one.
_CODE = re.compile(r"\b[A-Z]+\d[A-Za-z0-9]*\b")


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def clean_question(text: str) -> str:
    """Control characters (NUL, escape codes, line breaks) become single spaces: NUL cannot be
    stored in PostgreSQL text (the query log), and none of them means anything in a question."""
    return _CONTROL.sub(" ", text).strip()


@dataclass(frozen=True)
class QueryTerms:
    """A question's analysis, built once per ask and handed to every stage."""

    text: str
    content: frozenset[str]
    specific: frozenset[str]
    codes: frozenset[str] = frozenset()  # the specific terms that are codes (`_CODE`)

    @classmethod
    def of(cls, question: str) -> QueryTerms:
        content = frozenset(
            t
            for t in tokenize(question)
            if t not in QUESTION_WORDS and (len(t) > 1 or t.isdigit())  # "Tesla's" -> no "s"
        )
        words = question.split()
        # Capitalised words count as names unless they only start the question.
        rest = " ".join(words[1:]) if words else ""
        specific = set(tokenize(" ".join(_SPECIFIC.findall(rest))))
        specific |= (
            {t for t in tokenize(words[0]) if any(ch.isdigit() for ch in t)} if words else set()
        )
        for phrase in _QUOTED.findall(question):
            specific |= set(tokenize(phrase))
        specific &= content
        codes = set(tokenize(" ".join(_CODE.findall(question)))) & specific
        return cls(question, content, frozenset(specific), frozenset(codes))

    def coverage(self, terms: set[str] | frozenset[str]) -> float:
        """Share of the content terms present, specific terms counting double."""
        if not self.content:
            return 0.0
        weight = {t: 2.0 if t in self.specific else 1.0 for t in self.content}
        return sum(w for t, w in weight.items() if t in terms) / sum(weight.values())

    def missing_specific(self, terms: set[str] | frozenset[str]) -> list[str]:
        return sorted(self.specific - set(terms))

    def as_written(self, terms: list[str]) -> list[str]:
        """The question's own words for analysed terms ("leed" -> "Leeds"), in question order;
        a term no single word yields (a quoted phrase's) is shown as it is."""
        words = re.findall(r"[\w'’.:-]*\w", self.text)
        wanted = set(terms)
        shown: list[str] = []
        for word in words:
            hits = wanted & set(tokenize(word))
            if hits and word not in shown:
                shown.append(word)
                wanted -= hits
        return shown + sorted(wanted)
