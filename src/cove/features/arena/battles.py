"""Battles and votes in the store: plain repository functions over
:class:`~.store.Battle`. A battle is its owner's: ``user_id`` for a signed-in user, None for a
guest (reachable only by its unguessable id); voting on another owner's battle is
:class:`~cove.errors.NotFound`, the same as a missing one."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cove.errors import Conflict, InvalidRequest, NotFound
from cove.features.arena import rating
from cove.features.arena.store import Battle
from cove.store.tables import utcnow

GUEST_TTL = timedelta(days=1)  # an unvoted guest battle is deleted after this


def create(s: Session, user_id: int | None, models: list[str], blind: bool,
           prompt: str) -> Battle:
    """A new battle (``answering``); a guest's keeps no prompt. Also deletes guests' unvoted
    battles older than :data:`GUEST_TTL`."""
    s.execute(delete(Battle).where(Battle.user_id.is_(None), Battle.winner.is_(None),
                                   Battle.created_at < utcnow() - GUEST_TTL))
    battle = Battle(id="bt_" + secrets.token_hex(12), user_id=user_id,
                    models=json.dumps(models), blind=blind,
                    prompt=prompt if user_id is not None else None)
    s.add(battle)
    s.flush()
    return battle


def finish(s: Session, battle_id: str, answers: list[str] | None) -> None:
    """Mark a battle answered (``done``), keeping ``answers`` for a signed-in owner;
    ``answers`` None marks it ``failed`` (it cannot be voted on)."""
    battle = s.get(Battle, battle_id)
    if battle is None:
        return
    battle.status = "done" if answers is not None else "failed"
    if answers is not None and battle.user_id is not None:
        battle.answers = json.dumps(answers)


def get(s: Session, user_id: int | None, battle_id: str) -> Battle:
    """The battle ``battle_id`` of this owner. Raises NotFound: missing or another's."""
    battle = s.get(Battle, battle_id)
    if battle is None or battle.user_id != user_id:
        raise NotFound(f"no battle {battle_id!r}", param="battle_id")
    return battle


def vote(s: Session, user_id: int | None, battle_id: str, winner: str) -> Battle:
    """Record the vote ``winner`` (a slot letter of the battle, ``tie`` or ``bad``).

    Raises:
        NotFound: missing or another's battle. InvalidRequest: a winner that is not one of
            its slots, ``tie`` or ``bad`` (``param`` ``winner``). Conflict: already voted, or
            not (or never) fully answered.
    """
    battle = get(s, user_id, battle_id)
    slots = "ABCD"[:len(json.loads(battle.models))]
    if winner not in (*slots, "tie", "bad"):
        raise InvalidRequest(f"winner must be one of {', '.join(slots)}, tie or bad",
                             param="winner")
    if battle.winner is not None:
        raise Conflict("this battle already has a vote", code="already_voted")
    if battle.status != "done":
        raise Conflict("this battle's answers did not finish; it cannot be voted on",
                       code="battle_not_done")
    battle.winner, battle.voted_at = winner, utcnow()
    return battle


def as_dict(battle: Battle) -> dict[str, Any]:
    """``{"id", "blind", "status", "winner", "contestants": [{"slot", "model"}], "prompt",
    "answers", "created_at"}``; in blind mode ``model`` is None until the vote."""
    models = json.loads(battle.models)
    hidden = battle.blind and battle.winner is None
    return {"id": battle.id, "object": "arena.battle", "blind": battle.blind,
            "status": battle.status, "winner": battle.winner,
            "contestants": [{"slot": slot, "model": None if hidden else m}
                            for slot, m in zip("ABCD", models, strict=False)],
            "prompt": battle.prompt,
            "answers": json.loads(battle.answers) if battle.answers else None,
            "created_at": battle.created_at.isoformat() + "Z"}


def leaderboard(s: Session, rounds: int = 200) -> dict[str, Any]:
    """This instance's leaderboard from every vote (guests' too): ``{"object":
    "arena.leaderboard", "method", "votes", "models": [row]}`` (see :mod:`.rating`)."""
    votes = [(json.loads(m), str(w)) for m, w in s.execute(
        select(Battle.models, Battle.winner).where(Battle.winner.is_not(None))
        .order_by(Battle.voted_at, Battle.id))]
    rows = rating.leaderboard(votes, rounds=rounds)
    return {"object": "arena.leaderboard", "votes": len(votes),
            "method": f"Bradley-Terry (Elo scale, 1000 = anchor), 95% bootstrap interval "
                      f"over {rounds} resamples of the votes",
            "models": [r.as_dict() for r in rows]}


def export(s: Session, user_id: int) -> list[dict[str, Any]]:
    """The user's part of the data export: their battles with prompts, answers and votes
    (names shown)."""
    rows = s.scalars(select(Battle).where(Battle.user_id == user_id).order_by(Battle.created_at))
    out = []
    for b in rows:
        d = as_dict(b)
        d["contestants"] = [{"slot": slot, "model": m}
                            for slot, m in zip("ABCD", json.loads(b.models), strict=False)]
        out.append(d)
    return out
