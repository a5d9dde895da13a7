"""Models made from uploaded blobs: Ollama's ``/api/create`` with ``files`` (what ``ollama
create`` sends for ``FROM ./model.gguf``, and Open WebUI for a GGUF upload).

The client first uploads each file to ``/api/blobs/sha256:<hex>`` (stored content-addressed in
the model store), then names them: ``{"model": "name", "files": {"model.gguf":
"sha256:<hex>"}}``. Each blob must be a GGUF file that the ``gguf`` reader parses; one is the
model, and one more may be its vision projector (architecture ``clip``), as in Ollama.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cove.errors import InvalidRequest
from cove.models.gguf_meta import read_metadata
from cove.models.manage import store_of
from cove.models.names import parse_new_ref
from cove.models.registry import ModelEntry, ModelRegistry
from cove.models.store import Layer, Manifest, norm_digest

MAX_FILES = 8


@dataclass
class GgufFiles:
    """Uploaded GGUF blobs checked for a new model: the ``model`` layer and its ``metadata``
    summary, an optional vision ``projector`` layer, and the request's ``files`` (name ->
    digest)."""

    model: Layer
    metadata: dict[str, Any]
    projector: Layer | None
    files: dict[str, str]


def check_files(registry: ModelRegistry, files: dict[str, str]) -> GgufFiles:
    """Check that every blob ``files`` names (file name -> ``sha256:<hex>``) is stored and is
    a GGUF file, and sort out the model and its projector. Reads each file's metadata (about
    2 s for a large vocabulary), so call it off the event loop.

    Raises:
        InvalidRequest: no files or too many, a bad digest, a blob not uploaded, a file that is
            not GGUF (safetensors, a corrupt header), a split GGUF, two models or two
            projectors, or only a projector (``param`` is ``files.<name>`` where one is at
            fault).
    """
    store = store_of(registry)
    if not files:
        raise InvalidRequest("'files' is empty: name the uploaded GGUF, e.g. "
                             '{"model.gguf": "sha256:<hex>"}', param="files")
    if len(files) > MAX_FILES:
        raise InvalidRequest(f"at most {MAX_FILES} files", param="files")
    model: tuple[Layer, dict[str, Any]] | None = None
    projector: Layer | None = None
    for name, digest in files.items():
        param = f"files.{name}"
        try:
            d = norm_digest(digest)
        except InvalidRequest as e:
            raise InvalidRequest(f"{name}: {e.message}", param=param) from e
        path = store.blob_path(d)
        if not path.is_file():
            raise InvalidRequest(f"{name}: blob {d} is not on this server; upload it first "
                                 f"(POST /api/blobs/{d})", param=param)
        try:
            meta = read_metadata(path)
        except InvalidRequest as e:
            raise InvalidRequest(
                f"{name} is not a usable GGUF file ({e.message}); Cove runs GGUF models only "
                "(convert safetensors with llama.cpp's convert_hf_to_gguf.py)", param=param,
            ) from e
        split = meta.get("kv", {}).get("split.count")
        if isinstance(split, int) and split > 1:
            raise InvalidRequest(f"{name} is one part of a split GGUF ({split} parts); merge "
                                 "them first (llama-gguf-split --merge)", param=param)
        layer = Layer(d, path.stat().st_size)
        if meta.get("architecture") == "clip":
            if projector is not None:
                raise InvalidRequest("more than one vision projector in files", param=param)
            projector = layer
        else:
            if model is not None:
                raise InvalidRequest("more than one model GGUF in files (a model and at most "
                                     "one vision projector)", param=param)
            model = (layer, meta)
    if model is None:
        raise InvalidRequest("files has only a vision projector, no model GGUF", param="files")
    return GgufFiles(model[0], model[1], projector, dict(files))


def create_from_files(registry: ModelRegistry, name: str, files: GgufFiles, *,
                      system: str | None = None, options: dict[str, Any] | None = None,
                      license: str | None = None) -> ModelEntry:
    """Create (or replace) the model ``name`` from checked ``files``, with default ``system``
    prompt, ``options`` (Ollama names) and ``license``.

    Raises:
        InvalidRequest: ``name`` is not a valid name or is built in.
    """
    store = store_of(registry)
    ref = parse_new_ref(name)
    if registry.builtin(str(ref)) is not None:
        raise InvalidRequest(f"{ref} is a built-in model name", param="model")
    metadata = dict(files.metadata)
    if license is not None:
        metadata["license"] = license
    store.write(ref, Manifest(str(ref), model=files.model, projector=files.projector,
                              metadata=metadata, system=system, options=dict(options or {}),
                              source={"kind": "create", "files": files.files}))
    return registry.resolve(str(ref))
