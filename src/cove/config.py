"""Cove's one Settings class (pydantic-settings, ``COVE_`` environment prefix).

Nothing is built at import time: call :func:`load_settings` (or construct :class:`Settings`) where
the settings are needed and pass the object down.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "cove"


class Settings(BaseSettings):
    """Every setting Cove reads; each field is an environment variable ``COVE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="COVE_", extra="ignore")

    home: Path = Field(
        default_factory=_default_home,
        description="Data directory (model store, database); created when first needed. "
        "Default: $XDG_DATA_HOME/cove or ~/.local/share/cove.",
    )
    host: str = Field("127.0.0.1", description="Address `cove serve` binds to.")
    port: int = Field(11435, ge=0, le=65535, description="Port `cove serve` listens on.")
    default_model: str = Field(
        "smollm2:135m", description="Model used when a request or command names none."
    )
    n_ctx: int = Field(
        4096,
        ge=64,
        description="Context window in tokens (capped at the model's trained context length).",
    )
    n_threads: int = Field(
        default_factory=lambda: max(1, os.cpu_count() or 1),
        ge=1,
        description="CPU threads used for decoding and prompt processing.",
    )
    n_batch: int = Field(
        512, ge=8, description="Most tokens in one batched decode step (prompt chunks + decodes)."
    )
    n_parallel: int = Field(
        4,
        ge=1,
        le=64,
        description="Sequences decoded together (slots); each has its own n_ctx context window.",
    )
    max_queue: int = Field(
        16,
        ge=0,
        description="Requests that may wait for a free slot; more get HTTP 503 with Retry-After.",
    )
    max_body_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="Largest accepted HTTP request body, in bytes."
    )
    request_body_timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds a client may take to send a request body; slower ones get HTTP 408.",
    )
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = Field(
        "info", description="Server log level: critical, error, warning, info, debug, trace."
    )


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, with explicit keyword overrides on top."""
    return Settings(**overrides)  # type: ignore[arg-type]
