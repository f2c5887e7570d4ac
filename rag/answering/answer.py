"""Answerers turn ranked evidence into cited sentences. The default is extractive.

`ExtractiveAnswerer` quotes the sentences that the answerability judge and the coverage of the
question rate best: it reads the chunks the judge read and rated close to its best (when no
judge ran: those ranked close to the best one), starts from the sentence that covers the
question best (preferring the window the judge read and one holding the shape of answer asked
for: a time for "When ...?", `rag.answering.shapes`), then adds the sentences that cover what
the chosen ones leave out, so a two-step question ("Where does the Pacers' Lance Stephenson
play his home games?") gets both steps ("...plays for the Indiana Pacers." "They play their
home games at Bankers Life Fieldhouse."). Quotes are verbatim with a citation each: every quote
is an exact substring of its chunk by construction, and `check_citations` proves it before
anything leaves the service.

    reply = ExtractiveAnswerer().answer(QueryTerms.of("Parental leave?"), ranked)
    reply.text, reply.citations

Generative answers (`rag.answering.generate.LLMAnswerer`) implement the same protocol and fall
back to this answerer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

from rag.answering.qualifiers import Contrast, QualifierReader, plain_question
from rag.answering.sentences import split_sentences
from rag.answering.shapes import (
    ASKED_FOR,
    DAY_PARTS,
    asked_shape,
    day_part_terms,
    has_shape,
    must_hold,
)
from rag.retrieval.bm25 import tokenize
from rag.retrieval.terms import QueryTerms
from rag.types import Candidate, Citation, GeneratorInfo, TextSink


@dataclass
class Reply:
    """An answer's text with its citations, and how it was produced. `verbatim`: every
    sentence is its own quote (extractive); otherwise sentences are prose whose markers name
    the cited passages."""

    text: str
    citations: list[Citation]
    generator: GeneratorInfo = field(default_factory=lambda: GeneratorInfo(kind="extractive"))
    verbatim: bool = True


class Answerer(Protocol):
    kind: str

    def answer(
        self, query: QueryTerms, ranked: list[Candidate], on_sentence: TextSink | None = None
    ) -> Reply:
        """`on_sentence` receives each final sentence as soon as it is known (streaming)."""
        ...

    def contrast(self, query: QueryTerms, ranked: list[Candidate]) -> Contrast | None:
        """Why the evidence does not answer although it was judged to: the sentence that would
        answer first is about another qualifier than the question asks about."""
        ...


@dataclass
class _Sentence:
    text: str
    context: str  # its document's title and section headings
    candidate_rank: int
    position: int
    terms: frozenset[str]
    score: float


@dataclass
class ExtractiveAnswerer:
    depth: int = 3
    max_sentences: int = 3
    # A further sentence must cover question terms the chosen ones leave out, worth at least this
    # share of the question (about one term in ten; calib split: reference answers quoted 0.739
    # -> 0.890 of answered HaluEval questions against the old "score close to the best" rule).
    min_gain: float = 0.05
    # Among further sentences, those from the best sentence's own chunk continue its passage.
    same_chunk_bonus: float = 0.02
    # Only chunks close to the best one may contribute sentences: when the judge read some, those
    # it rated within this many logits of its best; when no judge ran, by score ratio.
    chunk_ratio: float = 0.7
    judge_margin: float = 2.0
    # Sentences inside the window the judge read gain this much (coverage is in [0, 1]).
    window_bonus: float = 0.25
    # A sentence holding the shape of answer the question asks for (a time for "When ...?", an
    # amount for "How much ...?": `rag.answering.shapes`) gains this much.
    shape_bonus: float = 0.15
    # Finds sentences about another qualifier than the question's (the night shift for a
    # question about the early shift): such a sentence is never quoted, and when it is the best
    # one, the evidence does not answer.
    qualifiers: QualifierReader | None = None
    kind: str = "extractive"

    def answer(
        self, query: QueryTerms, ranked: list[Candidate], on_sentence: TextSink | None = None
    ) -> Reply:
        usable = self._usable(ranked[: self.depth])
        chosen = self._choose(query, self._sentences(query, usable))
        chosen.sort(key=lambda s: (s.candidate_rank, s.position))
        citations = [
            Citation(marker=i, quote=s.text, candidate=usable[s.candidate_rank])
            for i, s in enumerate(chosen, start=1)
        ]
        marked = [f"{c.quote} [{c.marker}]" for c in citations]
        if on_sentence is not None:
            for sentence in marked:
                on_sentence(sentence)
        return Reply(" ".join(marked), citations)

    def contrast(self, query: QueryTerms, ranked: list[Candidate]) -> Contrast | None:
        sentences = self._sentences(query, self._usable(ranked[: self.depth]))
        if not sentences:
            return None
        if self.qualifiers is not None:
            lead = max(sentences, key=_rank)
            contrast = self.qualifiers.contrast(query.text, lead.text, lead.context)
            if contrast is not None:
                # A sentence scoring exactly as well, behind the lead by position only
                # ("Membership: Standard" before "Membership: Unlimited" for a question about
                # the unlimited one): the evidence answers if that sentence is about the
                # question's own qualifier.
                tied = [s for s in sentences if s is not lead and s.score == lead.score]
                if not any(
                    self.qualifiers.about(query.text, s.text, s.context, contrast) for s in tied
                ):
                    return contrast
        shape = must_hold(query.text)
        if shape is not None and plain_question(query.text):
            # Sentences holding the shape score higher, yet the answer's lead holds none: the
            # evidence speaks of the thing, not of its price or duration. A further sentence
            # from another passage may hold it (the second step of a two-step question); one
            # from the lead's own passage holds a neighbouring thing's ("lost vests are
            # replaced at 8 pounds" for the price of gloves).
            chosen = self._choose(query, sentences)
            if chosen and not any(
                has_shape(shape, s.text)
                for s in chosen
                if s is chosen[0] or s.candidate_rank != chosen[0].candidate_rank
            ):
                return Contrast("shape", ASKED_FOR[shape], chosen[0].text)
        return None

    def _choose(self, query: QueryTerms, sentences: list[_Sentence]) -> list[_Sentence]:
        """The sentences to quote, in the order chosen: the best one quotable, then those
        covering question terms the chosen ones leave out."""
        reader = self.qualifiers

        def quotable(s: _Sentence) -> bool:
            # A sentence about another qualifier than the question's is never quoted.
            return reader is None or reader.contrast(query.text, s.text, s.context) is None

        # Checked in the order they would be chosen: most sentences are never parsed.
        best = next((s for s in sorted(sentences, key=_rank, reverse=True) if quotable(s)), None)
        if best is None:
            return []
        chosen = [best]
        covered = best.terms & query.content

        def gain(s: _Sentence) -> float:
            fresh = query.coverage((s.terms & query.content) - covered)
            return fresh + (self.same_chunk_bonus if s.candidate_rank == best.candidate_rank else 0)

        # A further sentence must state something: a short unpunctuated line ("Sick leave") is a
        # heading, which adds the question's words but no fact.
        pool = [s for s in sentences if s is not best and not _heading_like(s.text)]
        while len(chosen) < self.max_sentences:
            pool = [s for s in pool if not any(_same(s.text, c.text) for c in chosen)]
            if not pool:
                break
            s = max(pool, key=lambda s: (gain(s), -s.candidate_rank, -s.position))
            if gain(s) < self.min_gain:
                break
            pool.remove(s)
            if quotable(s):
                chosen.append(s)
                covered |= s.terms & query.content
        return chosen

    def _usable(self, top: list[Candidate]) -> list[Candidate]:
        # The reranker's order stands (the judge's own order lowered MRR@10 on dev); the judge
        # only drops chunks it rates far below its best one.
        judged = [c.judge for c in top if c.judge is not None]
        if judged:
            # A chunk the judge did not read (it stops once the gate is settled) is not quoted:
            # "How long is parental leave?" must not gain "Passwords must be 14 characters long."
            floor = max(judged) - self.judge_margin
            return [c for c in top if c.judge is not None and c.judge >= floor]
        floor = self.chunk_ratio * top[0].score if top and top[0].score > 0 else float("-inf")
        return [c for i, c in enumerate(top) if i == 0 or c.score >= floor]

    def _sentences(self, terms: QueryTerms, top: list[Candidate]) -> list[_Sentence]:
        out: list[_Sentence] = []
        shape = asked_shape(terms.text)
        # Clock times are read as parts of the day only for a question that names one.
        day_part = bool(terms.content & DAY_PARTS)
        for rank, candidate in enumerate(top):
            text = candidate.payload.text
            # Earlier-ranked chunks win ties; the prior is small next to term coverage.
            prior = 0.05 * (len(top) - rank)
            lo, hi = candidate.window or (0, len(text))
            headings = _headings(candidate)
            context = " ".join(filter(None, [candidate.payload.title, candidate.payload.section]))
            for position, (a, b) in enumerate(split_sentences(text)):
                sentence = text[a:b]
                if _not_evidence(sentence, headings):
                    continue
                sentence_terms = frozenset(tokenize(sentence))
                if day_part:
                    sentence_terms |= day_part_terms(sentence)
                score = terms.coverage(sentence_terms) + prior
                if candidate.window and lo <= a and b <= hi:
                    score += self.window_bonus
                if shape is not None and has_shape(shape, sentence):
                    score += self.shape_bonus
                if _heading_like(sentence):
                    # "Parental leave" restates the question; the sentence under it answers it.
                    score *= 0.5
                out.append(_Sentence(sentence, context, rank, position, sentence_terms, score))
        return out


def _rank(s: _Sentence) -> tuple[float, int, int]:
    """The best sentence first: the highest score, then the earlier chunk and position."""
    return (s.score, -s.candidate_rank, -s.position)


def _headings(candidate: Candidate) -> frozenset[str]:
    """The chunk's document title and section headings, normalised: context for its sentences,
    never one of them to quote."""
    p = candidate.payload
    names = [p.title, *p.section.split(" > ")] if p.section else [p.title]
    return frozenset(_normal(n) for n in names if n)


def _not_evidence(sentence: str, headings: frozenset[str]) -> bool:
    """A question (an FAQ's own question, a heading that asks) or the chunk's title or heading
    restated is never an answer: "What are the help desk's opening hours? [1]" quoted the FAQ's
    question instead of the sentence under it."""
    return sentence.rstrip().endswith("?") or _normal(sentence) in headings


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def _heading_like(sentence: str) -> bool:
    return len(sentence.split()) < 5 and not sentence.rstrip().endswith((".", "!", "?", ":"))


def _same(a: str, b: str) -> bool:
    return _normal(a) == _normal(b)


_MARKED = re.compile(r"(.+?) ((?:\[\d+\])+)(?: |$)", re.S)


def check_citations(answer: str, citations: list[Citation], verbatim: bool = True) -> list[str]:
    """Problems that must stop an answer: an uncited sentence, an unknown marker, a quote that
    is not an exact substring of its chunk; with `verbatim`, a sentence that is not exactly the
    quote it cites. An empty list means the answer may be served."""
    problems: list[str] = []
    by_marker = {c.marker: c for c in citations}
    for c in citations:
        if c.quote not in c.candidate.payload.text:
            problems.append(f"quote [{c.marker}] is not in chunk {c.candidate.chunk_id}")
    consumed = 0
    for match in _MARKED.finditer(answer):
        if match.start() != consumed:
            problems.append(f"uncited text: {answer[consumed : match.start()]!r}")
        markers = [int(m) for m in re.findall(r"\d+", match.group(2))]
        for marker in markers:
            if marker not in by_marker:
                problems.append(f"marker [{marker}] has no citation")
        if verbatim and len(markers) == 1 and markers[0] in by_marker:
            if match.group(1).strip() != by_marker[markers[0]].quote:
                problems.append(f"sentence before [{markers[0]}] is not its quote")
        elif verbatim and len(markers) > 1:
            problems.append(f"a verbatim sentence cites {len(markers)} quotes")
        consumed = match.end()
    if answer[consumed:].strip():
        problems.append(f"uncited text: {answer[consumed:]!r}")
    if not answer.strip():
        problems.append("empty answer")
    return problems
