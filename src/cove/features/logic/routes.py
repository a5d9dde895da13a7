"""``POST /v1/logic/solve``: logic mode over HTTP. Errors take OpenAI's shape like the rest of
``/v1`` (the app's handlers render the :class:`~cove.errors.CoveError` the service raises)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from cove.api.openai.schemas import Int
from cove.features.logic import MAX_K
from cove.features.logic.service import solve
from cove.pipeline import ChatPipeline

router = APIRouter(prefix="/v1/logic")


class SolveRequest(BaseModel):
    """Body of ``/v1/logic/solve``; see :func:`cove.features.logic.service.solve`."""

    model_config = ConfigDict(extra="ignore")

    question: str = Field(min_length=1, max_length=20_000)
    model: str | None = None
    k: Int = Field(5, ge=1, le=MAX_K)
    temperature: float = Field(0.7, ge=0, le=2)
    seed: Int | None = None
    max_tokens: Int = Field(384, ge=1, le=8192)
    max_rounds: Int = Field(3, ge=0, le=5)
    tools: StrictBool = True
    verify: StrictBool = True
    constrained: StrictBool = False


def get_pipeline(request: Request) -> ChatPipeline:
    return request.app.state.pipeline  # type: ignore[no-any-return]


@router.post("/solve")
async def solve_route(body: SolveRequest, request: Request,
                      pipeline: Annotated[ChatPipeline, Depends(get_pipeline)]) -> Any:
    """Answer ``question`` by logic mode: ``{"object": "logic.result", "model", "question",
    "answer", "agreement", "votes", "k", "samples": [{"seed", "text", "answer", "tool_runs",
    "checks", "corrected", "finish_reason"}], "seconds"}``. Stops early if the client leaves."""
    task = asyncio.ensure_future(solve(
        pipeline, body.question, model=body.model, k=body.k, temperature=body.temperature,
        seed=body.seed, max_tokens=body.max_tokens, max_rounds=body.max_rounds,
        use_tools=body.tools, verify=body.verify,
        constrained=body.constrained))
    try:
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=0.25)
            if not done and await request.is_disconnected():
                task.cancel()
                return {}
        return {"object": "logic.result", **task.result().to_dict()}
    finally:
        if not task.done():
            task.cancel()
