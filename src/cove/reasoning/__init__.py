"""Reasoning (R1-style ``<think>…</think>``) parsing: text based, streaming-safe."""

from cove.reasoning.think import Kind, ThinkParser, split_reasoning, strip_reasoning

__all__ = ["Kind", "ThinkParser", "split_reasoning", "strip_reasoning"]
