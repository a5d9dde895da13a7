"""Tool calling: validate tool definitions, constrain output to tool calls, extract them."""

from cove.tools.spec import ToolCall, ToolCalls, ToolSpec, parse_tools
from cove.tools.stream import parse_calls, tool_events

__all__ = ["ToolCall", "ToolCalls", "ToolSpec", "parse_calls", "parse_tools", "tool_events"]
