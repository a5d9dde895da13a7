"""Saved idea boards: plain repository functions over :class:`~.store.Board` (a session in,
rows or dicts out). Every read and write takes the owner's ``user_id``; another user's board
is :class:`~cove.errors.NotFound`, the same as a missing one."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cove.errors import NotFound
from cove.features.ideas.store import Board
from cove.store.tables import utcnow


def save(s: Session, user_id: int, result: dict[str, Any]) -> Board:
    """Store a brainstorm's ``done`` event as a new board of ``user_id``."""
    board = Board(user_id=user_id, goal=result["goal"], model=result["model"],
                  constraints=json.dumps(result.get("constraints", [])),
                  criteria=json.dumps(result.get("criteria", [])),
                  ideas=json.dumps(result.get("ideas", [])),
                  groups=json.dumps(result.get("groups", [])))
    s.add(board)
    s.flush()
    return board


def get(s: Session, user_id: int, board_id: int) -> Board:
    """The board ``board_id`` of ``user_id``. Raises NotFound: missing or someone else's."""
    board = s.get(Board, board_id)
    if board is None or board.user_id != user_id:
        raise NotFound(f"no idea board {board_id}", param="board_id")
    return board


def listing(s: Session, user_id: int) -> list[Board]:
    """The user's boards, newest first."""
    return list(s.scalars(select(Board).where(Board.user_id == user_id)
                          .order_by(Board.id.desc())))


def delete(s: Session, user_id: int, board_id: int) -> None:
    """Delete a board. Raises NotFound: missing or someone else's."""
    s.delete(get(s, user_id, board_id))


def add_followup(s: Session, user_id: int, board_id: int, followup: dict[str, Any]) -> None:
    """Append a follow-up result to a board. Raises NotFound."""
    board = get(s, user_id, board_id)
    board.followups = json.dumps([*json.loads(board.followups), followup])
    board.updated_at = utcnow()


def as_dict(board: Board, *, full: bool = True) -> dict[str, Any]:
    """``{"id", "goal", "model", "created_at", "updated_at", "ideas": n}``, and with ``full``
    the lists themselves (``constraints``, ``criteria``, ``ideas``, ``groups``,
    ``followups``)."""
    out: dict[str, Any] = {"id": board.id, "goal": board.goal, "model": board.model,
                           "created_at": board.created_at.isoformat() + "Z",
                           "updated_at": board.updated_at.isoformat() + "Z"}
    ideas = json.loads(board.ideas)
    if not full:
        return {**out, "ideas": len(ideas)}
    return {**out, "constraints": json.loads(board.constraints),
            "criteria": json.loads(board.criteria), "ideas": ideas,
            "groups": json.loads(board.groups), "followups": json.loads(board.followups)}


def export(s: Session, user_id: int) -> list[dict[str, Any]]:
    """The user's part of the data export: every board, whole."""
    return [as_dict(b) for b in listing(s, user_id)]


def _md(text: Any) -> str:
    """Text safe inside a markdown table cell or list item (pipes escaped, one line)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def markdown(board: Board) -> str:
    """The board as a Markdown document: goal, constraints, criteria, ideas by theme (ranked,
    with score and pitch), then the follow-ups."""
    d = as_dict(board)
    lines = [f"# Ideas: {_md(d['goal'])}", "", f"*{d['model']}, {d['created_at']}*", ""]
    if d["constraints"]:
        lines += ["Constraints:", *[f"- {_md(c)}" for c in d["constraints"]], ""]
    lines += ["Criteria: " + ", ".join(_md(c) for c in d["criteria"]), ""]
    ideas = {i["id"]: i for i in d["ideas"]}
    for g in d["groups"] or [{"name": "Ideas", "ideas": list(ideas)}]:
        lines += [f"## {_md(g['name'])}", "", "| rank | score | idea | why |",
                  "|---:|---:|---|---|"]
        for i in sorted((ideas[x] for x in g["ideas"] if x in ideas), key=lambda i: i["rank"]):
            score = "" if i.get("score") is None else f"{i['score']:.1f}"
            lines.append(f"| {i['rank']} | {score} | **{_md(i['title'])}**: "
                         f"{_md(i['pitch'])} | {_md(i.get('why', ''))} |")
        lines.append("")
    for f in d["followups"]:
        lines += [f"## {f.get('action', 'follow-up').capitalize()}: "
                  f"{_md(', '.join(f.get('titles', [])))}", "", "```json",
                  json.dumps(f.get("result", {}), indent=2, ensure_ascii=False), "```", ""]
    return "\n".join(lines)
