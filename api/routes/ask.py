"""Questions: cited answers or refusals (`/ask`), and retrieval only (`/search`)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, field_validator

from api.auth import PrincipalDep
from api.deps import ServicesDep
from rag.auth import Principal, TierError, resolve_tiers
from rag.pipeline import Services
from rag.types import AskResult, SearchResult

router = APIRouter(tags=["ask"])

MAX_QUESTION_CHARS = 2000


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    tiers: list[str] | None = Field(default=None, description="narrow to these tiers")
    top_k: int = Field(default=5, ge=1, le=50)

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("question must not be blank")
        return value.strip()


def _tiers(services: Services, principal: Principal, requested: list[str] | None) -> list[str]:
    try:
        return resolve_tiers(list(services.settings.tiers), principal.tiers, requested)
    except TierError as exc:
        code = status.HTTP_403_FORBIDDEN if exc.forbidden else status.HTTP_422_UNPROCESSABLE_CONTENT
        raise HTTPException(code, str(exc)) from exc


@router.post("/ask")
async def create_answer(
    body: AskRequest, services: ServicesDep, principal: PrincipalDep
) -> AskResult:
    """Answer with a citation on every sentence, or refuse with a reason."""
    tiers = _tiers(services, principal, body.tiers)
    return await run_in_threadpool(
        services.asker.ask,
        body.question,
        tiers,
        body.top_k,
        principal.tiers,
        principal.name,
    )


@router.post("/search")
async def create_search(
    body: AskRequest, services: ServicesDep, principal: PrincipalDep
) -> SearchResult:
    """Retrieval only: the reranked chunks with their scores, no answer."""
    tiers = _tiers(services, principal, body.tiers)
    return await run_in_threadpool(services.asker.search, body.question, tiers, body.top_k)
