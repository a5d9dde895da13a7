"""The model store in the data directory: content-addressed blobs plus one manifest per model.

Layout under ``<COVE_HOME>/models``::

    blobs/sha256-<hex>                 GGUF files (and projectors), named by their SHA-256
    blobs/sha256-<hex>-partial         a download in progress (resumable)
    blobs/sha256-<hex>-upload-<random> an upload in progress (removed if it fails)
    manifests/<name parts>/<tag>.json  one JSON manifest per model name and tag

Manifest paths are built only from a validated :class:`~cove.models.names.ModelRef` and checked
to stay under the store root. Writes are atomic (temporary file + rename); a blob is removed
only when no manifest references it any more.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cove.errors import CoveError, InvalidRequest, ModelNotFound
from cove.models.names import ModelRef, parse_ref

_DIGEST = re.compile(r"^sha256[:-]([0-9a-f]{64})$")
CHUNK = 1 << 20
SCHEMA = 1


def norm_digest(digest: str) -> str:
    """``sha256-<hex>`` or ``sha256:<hex>`` -> ``sha256:<hex>``.

    Raises:
        InvalidRequest: not a SHA-256 digest.
    """
    m = _DIGEST.match((digest or "").lower())
    if m is None:
        raise InvalidRequest(f"{digest!r} is not a sha256 digest", param="digest")
    return f"sha256:{m[1]}"


def sha256_file(path: Path, progress: Callable[[int], None] | None = None) -> str:
    """``sha256:<hex>`` of a file, read in 1 MiB chunks; ``progress(bytes_so_far)`` per chunk."""
    h = hashlib.sha256()
    done = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            done += len(chunk)
            if progress:
                progress(done)
    return f"sha256:{h.hexdigest()}"


@dataclass
class Layer:
    """A blob a manifest uses: ``digest`` (``sha256:<hex>``) and ``size`` in bytes."""

    digest: str
    size: int


@dataclass
class Manifest:
    """One installed model (JSON file in ``manifests/``).

    ``model`` is the GGUF weights blob, or None for a preset over the bundled model
    (``bundled`` then names it). ``projector`` is a vision projector blob. ``adapter`` is a
    LoRA adapter GGUF applied over the weights (a model trained by ``cove train``).
    ``source`` says where the model came from (``{"kind": "pull", "repo": ..., "file": ...,
    "revision": ...}``, ``import``, ``ollama``, ``preset``, ``copy``, ``train``).
    ``metadata`` caches :func:`~cove.models.gguf_meta.read_metadata`. ``system`` and
    ``options`` are preset defaults (Ollama option names). ``created`` is a Unix time.
    """

    name: str
    model: Layer | None = None
    bundled: str | None = None
    projector: Layer | None = None
    adapter: Layer | None = None
    source: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    system: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    base: str | None = None
    created: float = field(default_factory=time.time)
    schema: int = SCHEMA

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        d = dict(d)
        for key in ("model", "projector", "adapter"):
            if d.get(key) is not None:
                d[key] = Layer(norm_digest(d[key]["digest"]), int(d[key]["size"]))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    def digests(self) -> list[str]:
        return [layer.digest for layer in (self.model, self.projector, self.adapter)
                if layer is not None]


class ModelStore:
    """Blobs and manifests under ``root`` (created on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.manifests = root / "manifests"

    # -- paths ------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        """Where the blob with ``digest`` lives (whether or not it exists)."""
        return self.blobs / norm_digest(digest).replace(":", "-")

    def partial_path(self, digest: str) -> Path:
        """Where a download of ``digest`` in progress is kept."""
        return self.blobs / (norm_digest(digest).replace(":", "-") + "-partial")

    def manifest_path(self, ref: ModelRef) -> Path:
        """The manifest file of ``ref``, guaranteed to be under ``manifests/``."""
        path = self.manifests.joinpath(*ref.parts, f"{ref.tag}.json")
        root = self.manifests.resolve()
        if not path.resolve().is_relative_to(root):  # defence in depth; refs cannot do this
            raise ModelNotFound(str(ref))
        return path

    # -- manifests --------------------------------------------------------------------------

    def read(self, ref: ModelRef) -> Manifest | None:
        """The manifest of ``ref``, or None when not installed (or unreadable)."""
        path = self.manifest_path(ref)
        try:
            return Manifest.from_dict(json.loads(path.read_text("utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError, CoveError):
            return None

    def write(self, ref: ModelRef, manifest: Manifest) -> None:
        """Write ``manifest`` for ``ref`` atomically (the name stored is ``str(ref)``)."""
        manifest.name = str(ref)
        path = self.manifest_path(ref)
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, manifest.to_json().encode("utf-8"))

    def items(self) -> Iterator[tuple[ModelRef, Manifest]]:
        """Every readable manifest with its reference, in name order."""
        if not self.manifests.is_dir():
            return
        for path in sorted(self.manifests.rglob("*.json")):
            rel = path.relative_to(self.manifests)
            try:
                ref = parse_ref("/".join(rel.parts[:-1]) + ":" + rel.stem)
            except CoveError:
                continue
            manifest = self.read(ref)
            if manifest is not None:
                yield ref, manifest

    def remove(self, ref: ModelRef) -> Manifest:
        """Delete ``ref``'s manifest, then every blob no manifest uses any more.

        Raises:
            ModelNotFound: not in the store.
        """
        manifest = self.read(ref)
        if manifest is None:
            raise ModelNotFound(str(ref))
        path = self.manifest_path(ref)
        path.unlink()
        for parent in path.parents:  # tidy empty name directories
            if parent == self.manifests or not parent.is_relative_to(self.manifests):
                break
            try:
                parent.rmdir()
            except OSError:
                break
        self.collect_garbage()
        return manifest

    def collect_garbage(self) -> list[str]:
        """Remove blobs that no manifest references (partials are kept); return their names."""
        if not self.blobs.is_dir():
            return []
        used = {d.replace(":", "-") for _, m in self.items() for d in m.digests()}
        removed = []
        for blob in self.blobs.iterdir():
            if _DIGEST.match(blob.name) and blob.name not in used:
                blob.unlink(missing_ok=True)
                removed.append(blob.name)
        return removed

    # -- blobs ------------------------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        """Whether the blob ``digest`` is stored.

        Raises:
            InvalidRequest: not a sha256 digest.
        """
        return self.blob_path(digest).is_file()

    def upload(self, digest: str) -> BlobUpload:
        """Start receiving the blob ``digest`` (see :class:`BlobUpload`).

        Raises:
            InvalidRequest: not a sha256 digest.
        """
        return BlobUpload(self, norm_digest(digest))

    def add_blob(self, src: Path, *, digest: str | None = None, link: bool = True) -> Layer:
        """Put the file ``src`` into the store (hard link where the filesystem allows and
        ``link`` is set, else a copy) and return its layer.

        ``digest``, when given, is checked against the file's actual SHA-256.

        Raises:
            InvalidRequest: ``src`` is not a regular file, or its digest is not ``digest``.
        """
        if not src.is_file():
            raise InvalidRequest(f"{src} is not a file", param="file")
        actual = sha256_file(src)
        if digest is not None and norm_digest(digest) != actual:
            raise InvalidRequest(f"{src} does not match its digest {digest}", param="file")
        target = self.blob_path(actual)
        size = src.stat().st_size
        if target.is_file() and target.stat().st_size == size:
            return Layer(actual, size)
        self.blobs.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + f"-tmp{os.getpid()}")
        tmp.unlink(missing_ok=True)
        try:
            if link:
                try:
                    os.link(src, tmp)
                except OSError:
                    shutil.copyfile(src, tmp)
            else:
                shutil.copyfile(src, tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return Layer(actual, size)


class BlobUpload:
    """A blob arriving in pieces (``POST /api/blobs/sha256:<hex>``): each :meth:`write` goes
    to a temporary file in ``blobs/`` and into the hash, so the body is never held in memory;
    :meth:`finish` checks the digest and renames the file into place (atomically; a concurrent
    upload of the same blob is harmless). :meth:`abort` (or a failed :meth:`finish`) removes
    the temporary file."""

    def __init__(self, store: ModelStore, digest: str) -> None:
        self.digest = digest
        self.target = store.blob_path(digest)
        store.blobs.mkdir(parents=True, exist_ok=True)
        self.tmp = self.target.with_name(f"{self.target.name}-upload-{os.urandom(6).hex()}")
        self._file = self.tmp.open("xb")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        """Append ``data`` (any size) to the blob."""
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)

    def finish(self) -> Layer:
        """Verify and store the blob; returns its layer.

        Raises:
            InvalidRequest: the bytes received do not have the announced digest (the temporary
                file is removed).
        """
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        actual = f"sha256:{self._hash.hexdigest()}"
        if actual != self.digest:
            self.abort()
            raise InvalidRequest(f"digest mismatch: the body's digest is {actual}, not "
                                 f"{self.digest}", param="digest")
        os.replace(self.tmp, self.target)
        return Layer(self.digest, self.size)

    def abort(self) -> None:
        """Drop what was received."""
        self._file.close()
        self.tmp.unlink(missing_ok=True)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
