"""Ratings of answers: what operators say the service got right or wrong."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api.auth import PrincipalDep
from api.deps import ServicesDep
from rag.ops.feedback import MAX_COMMENT, FeedbackError, Rating

router = APIRouter(prefix="/feedback", tags=["feedback"])


class FeedbackCreate(BaseModel):
    trace_id: str = Field(min_length=1, max_length=36, description="the ask's `trace_id`")
    rating: Literal["good", "wrong", "should_refuse", "should_answer"]
    comment: str | None = Field(default=None, max_length=MAX_COMMENT)
    correct_doc_id: str | None = Field(
        default=None, max_length=1000, description="the document that holds the right answer"
    )


class FeedbackPublic(BaseModel):
    trace_id: str
    rating: str
    comment: str | None
    correct_doc_id: str | None
    key_name: str | None
    rated_at: datetime


@router.post("", status_code=status.HTTP_201_CREATED, response_model=FeedbackPublic)
async def create_feedback(
    body: FeedbackCreate, services: ServicesDep, principal: PrincipalDep
) -> FeedbackPublic:
    """Rate an ask made with a key that reads no more than this one (403 otherwise)."""
    rating = Rating(**body.model_dump(), key_name=principal.name)
    try:
        stored = await run_in_threadpool(services.feedback.rate, rating, principal.tiers)
    except FeedbackError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return FeedbackPublic(**stored.__dict__)
