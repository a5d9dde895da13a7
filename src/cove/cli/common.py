"""Helpers every ``cove`` command shares: failing with a clear message, reading settings, and
the registry of installed models."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, NoReturn, Protocol, TypeVar

from pydantic import ValidationError
from rich.console import Console

from cove.config import Settings, load_settings
from cove.errors import CoveError, InvalidRequest
from cove.models.registry import ModelRegistry
from cove.models.store import ModelStore


def fail(err: CoveError | str) -> NoReturn:
    """Print ``Error: <message>`` in red on stderr and exit with status 1."""
    msg = err.message if isinstance(err, CoveError) else err
    Console(stderr=True).print(f"Error: {msg}", style="red", markup=False)
    sys.exit(1)


T = TypeVar("T")


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``"1 passage"``, ``"3 passages"``: ``n`` and the noun, plural unless ``n`` is 1
    (``plural`` when adding ``s`` is wrong)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


class _Closable(Protocol):
    def close(self) -> None: ...


def run_then_close(pipeline: _Closable, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` to its end, then close ``pipeline`` whatever happened: a Cove error is
    printed and exits 1 (:func:`fail`), Ctrl-C exits 130."""
    try:
        return asyncio.run(work)
    except CoveError as e:
        fail(e)
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        pipeline.close()


def read_settings(**overrides: object) -> Settings:
    """Settings from the environment; an invalid value is a clear error naming the variable,
    not a traceback."""
    try:
        return load_settings(**overrides)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            name = "COVE_" + "_".join(str(p) for p in err["loc"]).upper()
            lines.append(f"{name}: {err['msg']} (got {err.get('input')!r})")
        fail(InvalidRequest("invalid setting: " + "; ".join(lines)))


def open_registry(s: Settings) -> ModelRegistry:
    """Installed models: the bundled one and the store in ``COVE_HOME``."""
    return ModelRegistry(ModelStore(s.home / "models"))
