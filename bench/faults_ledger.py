"""What the clients of ``bench/faults.py`` were told, and its comparison with the store.

Every web app operation is recorded when it is sent and again when it is acknowledged (its
response arrived; for a sent message, the ``start`` event, which says the user message and an
empty answer are committed; for an answer, the ``done`` event). An operation in flight when the
server was killed may or may not have happened; an acknowledged one must be in the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Answer:
    """An answer as the client saw it: ``text`` and the arrival time of each delta."""

    user_id: int
    user_content: str
    assistant_id: int
    text: str = ""
    arrivals: list[tuple[float, int]] = field(default_factory=list)  # (monotonic s, len after)
    done: bool = False  # the done event arrived
    settled: bool = False  # cut by a kill, and read back after the restart: ``text`` is that


@dataclass
class Conv:
    """A conversation this client created (the create was acknowledged)."""

    id: str
    title: str  # the last acknowledged title
    deleted: bool = False  # the delete was acknowledged
    pending_title: str | None = None  # a rename in flight at the kill
    pending_delete: bool = False  # a delete in flight at the kill
    answers: list[Answer] = field(default_factory=list)


@dataclass
class Verdict:
    """One check of the store after a restart."""

    acknowledged: dict[str, int] = field(default_factory=dict)  # operation kind -> count
    lost: list[str] = field(default_factory=list)  # acknowledged operations not in the store
    problems: list[str] = field(default_factory=list)  # other wrong states (e.g. status)
    # per answer cut by the kill: (characters seen, of them not saved, seconds from the
    # arrival of the first unsaved one to the kill)
    partial: list[tuple[int, int, float]] = field(default_factory=list)


class Ledger:
    """All conversations the clients created, over every round."""

    def __init__(self) -> None:
        self.convs: dict[str, Conv] = {}
        self.acks: dict[str, int] = {}

    def ack(self, kind: str) -> None:
        self.acks[kind] = self.acks.get(kind, 0) + 1

    def check(self, stored: dict[str, dict[str, Any]], killed_at: float) -> Verdict:
        """Compare with ``stored`` (conversation id → the web API's conversation with its
        ``messages``) read after the restart; ``killed_at`` is the kill's monotonic time. The
        acknowledgements counted since the last check are reported, then reset. What the read
        shows of operations in flight at the kill becomes what the client knows, so that later
        rounds check that it stays (every round re-checks everything of earlier rounds)."""
        v = Verdict(acknowledged=self.acks)
        self.acks = {}
        for c in self.convs.values():
            got = stored.get(c.id)
            if c.deleted:
                if got is not None:
                    v.lost.append(f"delete of {c.id}: the conversation is back")
                continue
            if got is None:
                if c.pending_delete:
                    c.deleted = True
                else:
                    v.lost.append(f"create of {c.id}: the conversation is gone")
                continue
            c.pending_delete = False
            titles = {c.title} | ({c.pending_title} if c.pending_title else set())
            if got["title"] not in titles:
                v.lost.append(f"rename of {c.id}: title {got['title']!r}, told {c.title!r}")
            c.title, c.pending_title = got["title"], None
            self._check_messages(c, got["messages"], killed_at, v)
        return v

    def _check_messages(self, c: Conv, msgs: list[dict[str, Any]], killed_at: float,
                        v: Verdict) -> None:
        by_id = {m["id"]: m for m in msgs}
        for a in c.answers:
            user = by_id.get(a.user_id)
            if user is None or user["content"] != a.user_content:
                v.lost.append(f"message {a.user_id} of {c.id}: the user message is "
                              f"{'gone' if user is None else 'changed'}")
            got = by_id.get(a.assistant_id)
            if got is None:
                v.lost.append(f"answer {a.assistant_id} of {c.id}: gone")
                continue
            if a.done or a.settled:
                if got["content"] != a.text or (a.done and got["status"] != "complete"):
                    v.lost.append(f"answer {a.assistant_id} of {c.id}: told "
                                  f"{'complete' if a.done else 'interrupted'} ({len(a.text)} "
                                  f"chars), stored {got['status']} ({len(got['content'])} chars)")
                continue
            if got["status"] not in ("interrupted", "complete", "error"):
                v.problems.append(f"answer {a.assistant_id} of {c.id}: status {got['status']} "
                                  f"after the restart (want interrupted)")
            saved = got["content"]
            if not (saved.startswith(a.text) or a.text.startswith(saved)):
                v.lost.append(f"answer {a.assistant_id} of {c.id}: stored text is not what "
                              f"was streamed ({saved[:40]!r} vs {a.text[:40]!r})")
            else:
                unsaved = max(0, len(a.text) - len(saved))
                window = _window(a, len(saved), killed_at) if unsaved else 0.0
                v.partial.append((len(a.text), unsaved, window))
            a.text, a.settled = saved, True


def _window(a: Answer, saved_len: int, killed_at: float) -> float:
    """Seconds from the arrival of the first character that was not saved to the kill."""
    first = next((t for t, n in a.arrivals if n > saved_len), killed_at)
    return max(0.0, killed_at - first)
