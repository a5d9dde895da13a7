"""Model management operations shared by the CLI and the APIs: import, copy, remove, presets.

Every operation takes a :class:`~cove.models.registry.ModelRegistry` with a store, validates
references with :func:`~cove.models.names.parse_ref` first, and raises ``CoveError``\\ s.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cove.errors import CoveError, InvalidRequest, ModelNotFound
from cove.models.gguf_meta import read_metadata
from cove.models.names import parse_new_ref, parse_ref
from cove.models.options import check_option_names, validate_options
from cove.models.registry import ModelEntry, ModelRegistry
from cove.models.store import Layer, Manifest, ModelStore, norm_digest

OLLAMA_MODEL = "application/vnd.ollama.image.model"
OLLAMA_PROJECTOR = "application/vnd.ollama.image.projector"
OLLAMA_SYSTEM = "application/vnd.ollama.image.system"
OLLAMA_PARAMS = "application/vnd.ollama.image.params"
OLLAMA_LICENSE = "application/vnd.ollama.image.license"


def store_of(registry: ModelRegistry) -> ModelStore:
    """The registry's model store.

    Raises:
        CoveError: the registry has none (one of built-in models only).
    """
    if registry.store is None:
        raise CoveError("this registry has no model store")
    return registry.store


def default_name(file: Path) -> str:
    """A model name from a file name: ``Qwen2.5-0.5B-Instruct-Q4_K_M.gguf`` ->
    ``qwen2.5-0.5b-instruct-q4_k_m:latest``."""
    stem = re.sub(r"[^a-z0-9._-]+", "-", file.stem.lower()).strip("-._") or "model"
    return f"{stem[:80]}:latest"


def import_gguf(registry: ModelRegistry, file: Path, name: str | None = None, *,
                link: bool = True, mmproj: Path | None = None) -> ModelEntry:
    """Add a local GGUF file to the store under ``name`` (default from the file name), with
    its vision projector ``mmproj`` (an mmproj GGUF, architecture ``clip``) when given.

    The files are hard-linked into the store where possible (``link``), else copied; the
    user's files are never modified or removed.

    Raises:
        InvalidRequest: bad name, no such file, a directory, not a readable GGUF file, a
            projector given as the model, or an ``mmproj`` that is not a vision projector.
    """
    store = store_of(registry)
    ref = parse_new_ref(name or default_name(file), param="name")
    if registry.builtin(str(ref)) is not None:
        raise InvalidRequest(f"{ref} is a built-in model name; choose another", param="name")
    file = file.expanduser()
    if not file.exists():
        raise InvalidRequest(f"no such file: {file}", param="file")
    if not file.is_file():
        raise InvalidRequest(f"not a file: {file}", param="file")
    metadata = read_metadata(file)
    if metadata.get("architecture") == "clip":
        raise InvalidRequest(f"{file.name} is a vision projector, not a model: give the model "
                             "file, and the projector with --mmproj", param="file")
    projector = None
    if mmproj is not None:
        mmproj = mmproj.expanduser()
        if not mmproj.is_file():
            raise InvalidRequest(f"no such file: {mmproj}", param="mmproj")
        if read_metadata(mmproj).get("architecture") != "clip":
            raise InvalidRequest(f"{mmproj.name} is not a vision projector (an mmproj GGUF "
                                 "has architecture clip)", param="mmproj")
        projector = store.add_blob(mmproj, link=link)
    layer = store.add_blob(file, link=link)
    source = {"kind": "import", "file": file.name,
              **({"mmproj": mmproj.name} if mmproj is not None else {})}
    store.write(ref, Manifest(str(ref), model=layer, projector=projector, metadata=metadata,
                              source=source))
    return registry.resolve(str(ref))


def copy_model(registry: ModelRegistry, source: str, destination: str) -> ModelEntry:
    """Make ``destination`` a copy of ``source`` (same blobs, nothing copied on disk).

    An existing ``destination`` in the store is replaced (as Ollama does).

    Raises:
        ModelNotFound: no ``source`` (or a bad source name). InvalidRequest: ``destination``
        is not a valid name or is a built-in name.
    """
    store = store_of(registry)
    src = registry.resolve(source)
    dst = parse_new_ref(destination, param="destination")
    if registry.builtin(str(dst)) is not None:
        raise InvalidRequest(f"{dst} is a built-in model name", param="destination")
    manifest = _manifest_of(registry, src)
    manifest.base = src.name
    if manifest.source.get("kind") in (None, "", "import", "pull", "ollama"):
        manifest.source = {**manifest.source, "copied_from": src.name}
    store.write(dst, manifest)
    return registry.resolve(str(dst))


def _manifest_of(registry: ModelRegistry, entry: ModelEntry) -> Manifest:
    store = store_of(registry)
    if registry.builtin(entry.name) is not None:  # bundled (or built in): refer to it by name
        return Manifest(entry.name, bundled=entry.name, source={"kind": "copy"},
                        system=entry.system, options=dict(entry.options))
    manifest = store.read(parse_ref(entry.name))
    if manifest is None:
        raise ModelNotFound(entry.name)
    return manifest


def remove_model(registry: ModelRegistry, ref: str) -> None:
    """Remove a model's manifest and any blob nothing else uses.

    Raises:
        ModelNotFound: not installed. InvalidRequest: the bundled model.
    """
    store = store_of(registry)
    entry = registry.resolve(ref)
    if registry.builtin(ref) is not None:
        raise InvalidRequest(f"{entry.name} ships with Cove and cannot be removed", param="model")
    store.remove(parse_ref(entry.name))


# -- presets --------------------------------------------------------------------------------


@dataclass
class PresetSpec:
    """A preset: ``base`` model, ``system`` prompt and default ``options`` (Ollama names)."""

    base: str
    system: str | None = None
    options: dict[str, Any] | None = None


def read_preset_file(path: Path) -> PresetSpec:
    """Read a preset from YAML (``.yaml``/``.yml``) or TOML (``.toml``)::

        from: qwen2.5:0.5b          # base model (required)
        system: You answer briefly.
        parameters: {temperature: 0.2, num_ctx: 2048, stop: ["###"]}

    Raises:
        InvalidRequest: unreadable file, bad syntax, an unknown key, missing ``from``, bad
            parameters.
    """
    try:
        text = path.expanduser().read_text("utf-8")
    except OSError as e:
        raise InvalidRequest(f"cannot read preset file {path}: {e.strerror}", param="file") from e
    try:
        if path.suffix.lower() == ".toml":
            data: Any = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, ValueError) as e:
        raise InvalidRequest(f"preset file {path.name} is not valid: {e}", param="file") from e
    except Exception as e:  # yaml.YAMLError
        raise InvalidRequest(f"preset file {path.name} is not valid: {e}", param="file") from e
    if not isinstance(data, dict):
        raise InvalidRequest("a preset file must be a mapping with 'from'", param="file")
    for key in data:
        if key not in ("from", "system", "parameters"):
            raise InvalidRequest(f"preset file {path.name}: unknown key {key!r} (a preset has "
                                 "'from', 'system' and 'parameters')", param=str(key))
    return preset_from_dict(data)


def preset_from_dict(data: dict[str, Any]) -> PresetSpec:
    """A :class:`PresetSpec` from ``{"from", "system", "parameters"}``.

    Raises:
        InvalidRequest: missing or non-string ``from``/``system``, bad parameters (an
            unknown name, see :func:`~cove.models.options.check_option_names`, or value).
    """
    base = data.get("from")
    if not isinstance(base, str) or not base:
        raise InvalidRequest("a preset needs 'from': the base model", param="from")
    return PresetSpec(base, *preset_defaults(data.get("system"), data.get("parameters")))


def preset_defaults(system: Any, parameters: Any) -> tuple[str | None, dict[str, Any]]:
    """A model's default ``system`` prompt and ``parameters`` (Ollama option names), checked.

    Raises:
        InvalidRequest: a non-string ``system``, bad parameters (an unknown name, see
            :func:`~cove.models.options.check_option_names`, or value).
    """
    if system is not None and not isinstance(system, str):
        raise InvalidRequest("'system' must be a string", param="system")
    check_option_names(parameters)
    return system, validate_options(parameters, "parameters")


def create_preset(registry: ModelRegistry, name: str, spec: PresetSpec) -> ModelEntry:
    """Create (or replace) the model ``name`` as a preset over ``spec.base``.

    The preset shares its base's weights blob, so removing the base later keeps the preset
    working. Its options are the base's options updated with the preset's.

    Raises:
        ModelNotFound: no such base (or a bad base name). InvalidRequest: ``name`` is not a
        valid name or is built in.
    """
    store = store_of(registry)
    ref = parse_new_ref(name)
    if registry.builtin(str(ref)) is not None:
        raise InvalidRequest(f"{ref} is a built-in model name", param="model")
    base = registry.resolve(spec.base)
    manifest = _manifest_of(registry, base)
    manifest.base = base.name
    manifest.source = {"kind": "preset", "from": base.name}
    if spec.system is not None:
        manifest.system = spec.system
    manifest.options = {**manifest.options, **(spec.options or {})}
    store.write(ref, manifest)
    return registry.resolve(str(ref))


# -- Ollama store import ----------------------------------------------------------------------


def default_ollama_dir() -> Path:
    """``$OLLAMA_MODELS`` or ``~/.ollama/models`` (Ollama's default store)."""
    env = os.environ.get("OLLAMA_MODELS")
    return Path(env) if env else Path.home() / ".ollama" / "models"


def _ollama_name(parts: tuple[str, ...]) -> str | None:
    """Manifest path parts ``(host, namespace, model, tag)`` -> a Cove name, or None."""
    if len(parts) != 4:
        return None
    host, namespace, model, tag = parts
    if host == "registry.ollama.ai" and namespace == "library":
        return f"{model}:{tag}"
    if host in ("hf.co", "huggingface.co"):
        return f"hf.co/{namespace}/{model}:{tag}"
    return f"{namespace}/{model}:{tag}"


def import_ollama(registry: ModelRegistry, root: Path | None = None, *,
                  link: bool = True) -> list[tuple[str, str]]:
    """Import every model of an Ollama store (``manifests/<host>/<ns>/<model>/<tag>`` and
    ``blobs/sha256-<hex>``, as Ollama lays them out). Blobs are verified against their digest
    and hard-linked where the filesystem allows.

    Returns:
        ``(name, outcome)`` per manifest found: ``imported``, or why it was skipped.

    Raises:
        InvalidRequest: ``root`` is not an Ollama store.
    """
    store = store_of(registry)
    root = (root or default_ollama_dir()).expanduser()
    manifests = root / "manifests"
    if not manifests.is_dir():
        raise InvalidRequest(f"{root} is not an Ollama model store (no manifests/)", param="dir")
    results: list[tuple[str, str]] = []
    for path in sorted(p for p in manifests.rglob("*") if p.is_file()):
        parts = path.relative_to(manifests).parts
        label = "/".join(parts)
        try:
            name = _ollama_name(parts)
            if name is None:
                results.append((label, "skipped: unexpected manifest path"))
                continue
            ref = parse_ref(name)
            results.append((str(ref), _import_one(registry, store, root, path, ref, link)))
        except CoveError as e:
            results.append((label, f"skipped: {e.message}"))
    return results


def _import_one(registry: ModelRegistry, store: ModelStore, root: Path, path: Path,
                ref: Any, link: bool) -> str:
    try:
        doc = json.loads(path.read_text("utf-8"))
        layers = {layer["mediaType"]: layer for layer in doc["layers"]}
    except (OSError, ValueError, KeyError, TypeError):
        return "skipped: unreadable manifest"
    if OLLAMA_MODEL not in layers:
        return "skipped: no model layer"
    if registry.builtin(str(ref)) is not None:
        return "skipped: built-in name"

    def blob(media: str) -> Path:
        digest = norm_digest(layers[media]["digest"])
        return root / "blobs" / digest.replace(":", "-")

    model_layer = store.add_blob(blob(OLLAMA_MODEL), digest=layers[OLLAMA_MODEL]["digest"],
                                 link=link)
    projector: Layer | None = None
    if OLLAMA_PROJECTOR in layers:
        projector = store.add_blob(blob(OLLAMA_PROJECTOR),
                                   digest=layers[OLLAMA_PROJECTOR]["digest"], link=link)
    system = _small_text(blob(OLLAMA_SYSTEM)) if OLLAMA_SYSTEM in layers else None
    options: dict[str, Any] = {}
    if OLLAMA_PARAMS in layers:
        try:
            options = validate_options(json.loads(_small_text(blob(OLLAMA_PARAMS)) or "{}"))
        except (ValueError, CoveError):
            options = {}
    metadata = read_metadata(store.blob_path(model_layer.digest))
    if OLLAMA_LICENSE in layers and not metadata.get("license"):
        metadata["license"] = _small_text(blob(OLLAMA_LICENSE))
    store.write(ref, Manifest(str(ref), model=model_layer, projector=projector,
                              metadata=metadata, system=system, options=options,
                              source={"kind": "ollama", "manifest": str(path)}))
    return "imported"


def _small_text(path: Path, limit: int = 1 << 20) -> str | None:
    try:
        with path.open("rb") as f:
            return f.read(limit).decode("utf-8", errors="replace")
    except OSError:
        return None
