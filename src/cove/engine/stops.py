"""Stop-sequence matching over a text stream, holding back text that may start a stop sequence.

A stop sequence may span several tokens; text is only released once it can no longer be the
beginning of any stop string, so no partial stop text ever reaches the client.
"""

from __future__ import annotations


class StopMatcher:
    """Feed text pieces; get back the text that is safe to emit and whether a stop was hit.

    >>> m = StopMatcher(["\\nUser:"])
    >>> m.feed("Hello\\nUs")
    ('Hello', False)
    >>> m.feed("er: hi")
    ('', True)
    """

    def __init__(self, stops: list[str] | tuple[str, ...]) -> None:
        self.stops = [s for s in stops if s]
        self._held = ""
        self.stopped = False
        self.matched: str | None = None  # the stop sequence that ended the text, if any

    def feed(self, text: str) -> tuple[str, bool]:
        """Add ``text``; return ``(safe_text, stopped)``. After a stop, further input is ignored."""
        if self.stopped:
            return "", True
        if not self.stops:
            return text, False
        buf = self._held + text
        first = -1
        for s in self.stops:
            i = buf.find(s)
            if i != -1 and (first == -1 or i < first):
                first, self.matched = i, s
        if first != -1:
            self._held = ""
            self.stopped = True
            return buf[:first], True
        hold = self._partial_suffix(buf)
        self._held = buf[len(buf) - hold :] if hold else ""
        return buf[: len(buf) - hold], False

    def flush(self) -> str:
        """Release held text at the end of generation (it did not become a stop sequence)."""
        out, self._held = ("" if self.stopped else self._held), ""
        return out

    def _partial_suffix(self, buf: str) -> int:
        """Length of the longest suffix of ``buf`` that is a proper prefix of some stop string."""
        best = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(buf)), best, -1):
                if buf.endswith(s[:k]):
                    best = k
                    break
        return best
