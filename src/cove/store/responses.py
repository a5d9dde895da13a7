"""Stored responses of the OpenAI Responses API (table ``responses``), over a SQLAlchemy session.

Every query is scoped by owner: ``user_id`` is the account of the API key or web session that
made the response, or None ("local": made while the server was open, on loopback with no
account). A response of another owner is reported exactly like one that does not exist
(:class:`NotFound`). Each row keeps the response object and the whole input context (the
input items and outputs of the responses it continues, then its own input), so continuing a
response never needs its ancestors and deleting one never breaks another.

The caller commits. No HTTP here.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session

from cove.errors import InvalidRequest, NotFound
from cove.store.tables import StoredResponse, utcnow

CONTINUABLE = ("completed", "incomplete")
INTERRUPTED = {"code": "server_error",
               "message": "the server stopped while this response was being generated"}


def create(s: Session, response: dict[str, Any], input_items: list[dict[str, Any]],
           user_id: int | None) -> None:
    """Store a new response (usually ``in_progress``) with its whole input context."""
    s.add(StoredResponse(id=response["id"], user_id=user_id, model=response["model"],
                         status=response["status"], writer=s.info.get("writer"),
                         previous_response_id=response.get("previous_response_id"),
                         body=json.dumps(response, ensure_ascii=False),
                         input_items=json.dumps(input_items, ensure_ascii=False)))
    s.flush()


def save(s: Session, response: dict[str, Any]) -> None:
    """Replace a stored response's object (its final state). A response deleted meanwhile
    stays deleted."""
    s.execute(update(StoredResponse).where(StoredResponse.id == response["id"]).values(
        status=response["status"], body=json.dumps(response, ensure_ascii=False),
        updated_at=utcnow()))


def _row(s: Session, user_id: int | None, response_id: str) -> StoredResponse:
    row = s.get(StoredResponse, response_id)
    if row is None or row.user_id != user_id:
        raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
    return row


def body(row: StoredResponse) -> dict[str, Any]:
    """The response object of ``row``; one the server stopped generating is ``failed`` with
    an error saying so (see :func:`mark_interrupted`)."""
    out: dict[str, Any] = json.loads(row.body)
    if out.get("status") != row.status:
        out["status"] = row.status
        if row.status == "failed" and not out.get("error"):
            out["error"] = INTERRUPTED
    return out


def get(s: Session, user_id: int | None, response_id: str) -> dict[str, Any]:
    """The response object ``response_id`` of ``user_id``. Raises NotFound."""
    return body(_row(s, user_id, response_id))


def context(s: Session, user_id: int | None, response_id: str) -> list[dict[str, Any]]:
    """The input context of a response that continues ``response_id``: its context and its
    output items.

    Raises:
        NotFound: no such response of this owner (``previous_response_id``,
            code ``previous_response_not_found``).
        InvalidRequest: the response is still in progress, failed or was cancelled.
    """
    try:
        row = _row(s, user_id, response_id)
    except NotFound as e:
        raise NotFound(f"Previous response with id '{response_id}' not found.",
                       param="previous_response_id", code="previous_response_not_found") from e
    prev = body(row)
    if prev["status"] not in CONTINUABLE:
        raise InvalidRequest(f"Previous response with id '{response_id}' is {prev['status']} "
                             "and cannot be continued.", param="previous_response_id")
    items: list[dict[str, Any]] = json.loads(row.input_items)
    return items + list(prev["output"])


def remove(s: Session, user_id: int | None, response_id: str) -> None:
    """Hard-delete one stored response. Raises NotFound."""
    row = _row(s, user_id, response_id)
    s.execute(delete(StoredResponse).where(StoredResponse.id == row.id))


def input_items(s: Session, user_id: int | None, response_id: str, *, after: str | None = None,
                limit: int = 20, order: str = "desc") -> dict[str, Any]:
    """A page of the response's input items, OpenAI's list object: ``{"object": "list",
    "data", "first_id", "last_id", "has_more"}``; ``order`` ``desc`` lists the newest item
    first; ``after`` is the id of the item the page starts after.

    Raises:
        NotFound: no such response. InvalidRequest: ``after`` is not one of its items.
    """
    items: list[dict[str, Any]] = json.loads(_row(s, user_id, response_id).input_items)
    if order == "desc":
        items.reverse()
    if after is not None:
        ids = [i.get("id") for i in items]
        if after not in ids:
            raise InvalidRequest(f"no input item {after!r} in this response", param="after")
        items = items[ids.index(after) + 1:]
    page = items[:limit]
    return {"object": "list", "data": page,
            "first_id": page[0].get("id") if page else None,
            "last_id": page[-1].get("id") if page else None,
            "has_more": len(items) > limit}


def export(s: Session, user_id: int) -> list[dict[str, Any]]:
    """Every stored response of ``user_id``, oldest first: ``[{"response", "input_items"}]``."""
    rows = s.scalars(select(StoredResponse).where(StoredResponse.user_id == user_id)
                     .order_by(StoredResponse.created_at, StoredResponse.id))
    return [{"response": body(r), "input_items": json.loads(r.input_items)} for r in rows]


def purge_older_than(s: Session, days: int) -> int:
    """Delete every stored response (of any owner, local ones too) created more than ``days``
    days ago; returns how many. ``days`` 0 deletes nothing."""
    if days <= 0:
        return 0
    cutoff = utcnow() - timedelta(days=days)
    result = s.execute(delete(StoredResponse).where(StoredResponse.created_at < cutoff))
    return int(result.rowcount)  # type: ignore[attr-defined]


def mark_interrupted(s: Session, where: Any = None) -> int:
    """Mark responses left ``in_progress`` by a process that died as ``failed``: all of them
    (at a start with no other process), or those matching ``where`` as well; returns how
    many."""
    stmt = update(StoredResponse).where(StoredResponse.status == "in_progress")
    if where is not None:
        stmt = stmt.where(where)
    done = cast(CursorResult[Any], s.execute(stmt.values(status="failed")))
    return int(done.rowcount or 0)
