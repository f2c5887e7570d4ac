"""Operators' ratings of answers: the loop from what was asked to what is evaluated.

A rating names an ask by its trace id (every `/ask` response has one): `good`, `wrong`,
`should_refuse` (it answered; it should have refused), `should_answer` (it refused; it should
have answered), with an optional comment and the document that holds the right answer. A key may
rate only asks made with a key that reads no more than it, the rule the hits report applies, so
a narrow key can neither see nor rate a wider key's asks. Rated asks become rows of the eval
dataset format (`dataset_rows`), so `ragops eval` and the CI gate can run them.

    log = FeedbackLog(engine)
    log.rate(Rating("3f2c...", "should_answer", correct_doc_id="leave-policy.pdf"), reader)
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import Engine, insert, select

from rag.ops.db import as_utc, feedback, query_log
from rag.types import utc_now

RatingKind = Literal["good", "wrong", "should_refuse", "should_answer"]
RATINGS: tuple[str, ...] = get_args(RatingKind)
MAX_COMMENT = 2000


class FeedbackError(ValueError):
    """A rating that cannot be taken; `status` is the HTTP status that says why."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Rating:
    trace_id: str
    rating: str
    comment: str | None = None
    correct_doc_id: str | None = None
    key_name: str | None = None
    rated_at: datetime = field(default_factory=utc_now)

    def to_dict(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "rating": self.rating,
            "comment": self.comment,
            "correct_doc_id": self.correct_doc_id,
            "key_name": self.key_name,
            "rated_at": self.rated_at.isoformat(timespec="seconds"),
        }


@dataclass
class RatedAsk:
    """A rating with the ask it rates, as the query log has it."""

    rating: Rating
    ask: dict[str, Any]


def readable_by(allowed_tiers: Collection[str], reader_tiers: Collection[str] | None) -> bool:
    """An ask made with a key reading `allowed_tiers` is visible to a reader of `reader_tiers`
    (None: everything, the operator's own CLI) when it read no more than the reader may."""
    return reader_tiers is None or set(allowed_tiers) <= set(reader_tiers)


class FeedbackLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def rate(self, rating: Rating, reader_tiers: Collection[str] | None) -> Rating:
        """Store a rating of an ask the reader may see; FeedbackError (422, 404, 403) if not."""
        if rating.rating not in RATINGS:
            raise FeedbackError(
                f"unknown rating {rating.rating[:40]!r}; one of: {', '.join(RATINGS)}", 422
            )
        if rating.comment is not None and len(rating.comment) > MAX_COMMENT:
            raise FeedbackError(f"comment over {MAX_COMMENT} characters", 422)
        with self.engine.begin() as conn:
            ask = (
                conn.execute(
                    select(query_log.c.allowed_tiers).where(query_log.c.trace_id == rating.trace_id)
                )
                .mappings()
                .first()
            )
            if ask is None:
                raise FeedbackError("no ask with this trace id", 404)
            if not readable_by(ask["allowed_tiers"], reader_tiers):
                raise FeedbackError(
                    "this ask was made with a key that reads tiers this key may not", 403
                )
            conn.execute(
                insert(feedback).values(
                    trace_id=rating.trace_id,
                    rating=rating.rating,
                    comment=rating.comment,
                    correct_doc_id=rating.correct_doc_id,
                    key_name=rating.key_name,
                    rated_at=rating.rated_at,
                )
            )
        return rating

    def rated(
        self, since: datetime, reader_tiers: Collection[str] | None = None
    ) -> Iterator[RatedAsk]:
        """Ratings given since `since`, oldest first, of asks the reader may see."""
        with self.engine.connect() as conn:
            ratings = list(
                conn.execute(
                    select(feedback)
                    .where(feedback.c.rated_at >= since)
                    .order_by(feedback.c.rated_at, feedback.c.id)
                ).mappings()
            )
            ids = sorted({r["trace_id"] for r in ratings})
            asks = {
                a["trace_id"]: dict(a)
                for a in conn.execute(
                    select(query_log).where(query_log.c.trace_id.in_(ids))
                ).mappings()
            }
        for row in ratings:
            ask = asks.get(row["trace_id"])
            if ask is None or not readable_by(ask["allowed_tiers"], reader_tiers):
                continue
            values = {k: row[k] for k in ("trace_id", "rating", "comment", "correct_doc_id")}
            rated_at = as_utc(row["rated_at"]) or since
            yield RatedAsk(Rating(**values, key_name=row["key_name"], rated_at=rated_at), ask)


def dataset_row(rated: RatedAsk, include_comments: bool = False) -> dict[str, Any] | None:
    """A rated ask as a row of the eval dataset format, or None when the rating does not say
    what the right behaviour is ("wrong" or "should_answer" without the right document)."""
    r, ask = rated.rating, rated.ask
    cited = sorted({c["doc_id"] for c in ask["cited"]})
    answered = ask["outcome"] == "answered"
    if r.rating == "good":
        answerable, relevant = answered, cited if answered else []
    elif r.rating == "should_refuse":
        answerable, relevant = False, []
    elif r.correct_doc_id:  # wrong or should_answer, with the document that answers
        answerable, relevant = True, [r.correct_doc_id]
    else:
        return None
    row: dict[str, Any] = {
        "id": f"feedback-{r.trace_id}",
        "question": ask["question"],
        "tiers": list(ask["allowed_tiers"]),
        "answerable": answerable,
        "relevant_doc_ids": relevant,
        "rating": r.rating,
    }
    if include_comments and r.comment:
        row["comment"] = r.comment
    return row
