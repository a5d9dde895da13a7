"""Response headers both API families add to a chat answer."""

from __future__ import annotations

from cove.chat import ChatStream

TOOLS_OFFERED = "X-Cove-Tools-Offered"
TOOLS_SELECTED = "X-Cove-Tools-Selected"


def tool_headers(stream: ChatStream) -> dict[str, str]:
    """When only some of a request's tools were put in the prompt (too many to describe them
    all): ``X-Cove-Tools-Offered`` (how many the request had) and ``X-Cove-Tools-Selected``
    (the names kept, comma-separated, in the request's order). Otherwise no headers."""
    spec = stream.tools
    if spec is None or not spec.offered:
        return {}
    return {TOOLS_OFFERED: str(spec.offered), TOOLS_SELECTED: ", ".join(spec.names)}
