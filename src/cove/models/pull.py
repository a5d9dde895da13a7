"""Pull GGUF models from Hugging Face: the only code in Cove that opens outbound connections.

Listing goes through ``huggingface_hub`` (``HfApi.model_info`` with file metadata: sizes and
the LFS SHA-256 of every file); the transfer uses huggingface_hub's HTTP session with a
``Range`` request, so an interrupted pull (Ctrl-C, network loss) resumes from
``blobs/sha256-<hex>-partial``. The file is verified against the hub's SHA-256 before it is
renamed into the store; a mismatch deletes the partial and fails. Every connection happens
inside :func:`cove.privacy.egress_allowed` for the hub's host (redirects only to the hub's own
CDN hosts), and only when the user asked for a pull. ``HF_ENDPOINT`` selects another hub.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

from cove.errors import CoveError, ModelNotFound, PullFailed
from cove.models.gguf_meta import read_metadata
from cove.models.names import DEFAULT_QUANT, ModelRef, parse_ref
from cove.models.registry import ModelEntry, ModelRegistry
from cove.models.store import CHUNK, Layer, Manifest, ModelStore, norm_digest
from cove.privacy import egress_allowed

# Curated short names -> (repository, model file, vision projector file or None).
CURATED: dict[str, tuple[str, str, str | None]] = {
    "deepseek-r1:1.5b": ("bartowski/DeepSeek-R1-Distill-Qwen-1.5B-GGUF",
                         "DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf", None),
    "deepseek-r1:7b": ("bartowski/DeepSeek-R1-Distill-Qwen-7B-GGUF",
                       "DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf", None),
    "qwen2.5:0.5b": ("Qwen/Qwen2.5-0.5B-Instruct-GGUF", "qwen2.5-0.5b-instruct-q4_k_m.gguf", None),
    "qwen2.5:1.5b": ("Qwen/Qwen2.5-1.5B-Instruct-GGUF", "qwen2.5-1.5b-instruct-q4_k_m.gguf", None),
    "qwen2.5:7b": ("bartowski/Qwen2.5-7B-Instruct-GGUF", "Qwen2.5-7B-Instruct-Q4_K_M.gguf", None),
    "smolvlm:256m": ("ggml-org/SmolVLM-256M-Instruct-GGUF", "SmolVLM-256M-Instruct-Q8_0.gguf",
                     "mmproj-SmolVLM-256M-Instruct-Q8_0.gguf"),
    # vision models: the weights and their projector (mmproj) from ggml-org's conversions
    "qwen2.5vl:3b": ("ggml-org/Qwen2.5-VL-3B-Instruct-GGUF", "Qwen2.5-VL-3B-Instruct-Q4_K_M.gguf",
                     "mmproj-Qwen2.5-VL-3B-Instruct-Q8_0.gguf"),
    "gemma3:4b": ("ggml-org/gemma-3-4b-it-GGUF", "gemma-3-4b-it-Q4_K_M.gguf",
                  "mmproj-model-f16.gguf"),
}
_CDN_SUFFIXES = (".hf.co", ".huggingface.co", ".xethub.hf.co")


@dataclass(frozen=True)
class Progress:
    """One progress report, in Ollama's ``/api/pull`` shape: ``status`` text, and for a
    download the blob ``digest`` with ``total`` and ``completed`` bytes."""

    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


ProgressFn = Callable[[Progress], None]


class PullCancelled(PullFailed):
    """The pull was cancelled; the partial download is kept for resuming."""

    status = 499
    code = "pull_cancelled"


@dataclass(frozen=True)
class _File:
    name: str
    digest: str
    size: int


def endpoint() -> str:
    """The hub to pull from: ``$HF_ENDPOINT`` or huggingface_hub's default."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def source_of(ref: ModelRef) -> tuple[str, str | None, str | None]:
    """``(repo_id, model file or None to pick by quant, projector file or None)``.

    Raises:
        ModelNotFound: neither a curated name nor an ``hf.co/...`` reference.
    """
    curated = CURATED.get(str(ref))
    if curated is not None:
        return curated
    if ref.repo_id is not None:
        return ref.repo_id, None, None
    err = ModelNotFound(str(ref))
    err.message = (f"cannot pull {str(ref)!r}: use hf.co/<owner>/<repo>[:quant] or one of "
                   f"{', '.join(sorted(CURATED))}")
    raise err


def pick_file(files: dict[str, _File], quant: str) -> _File:
    """The GGUF file of ``files`` whose name carries the quantization ``quant``
    (case-insensitive; projectors and split files excluded).

    Raises:
        PullFailed: none, or several candidates.
    """
    q = quant.lower()
    ggufs = [f for n, f in files.items() if n.lower().endswith(".gguf")
             and "mmproj" not in n.lower() and "-of-0" not in n.lower()]
    pattern = re.compile(rf"(^|[-._]){re.escape(q)}($|[-._])")
    matches = [f for f in ggufs if pattern.search(Path(f.name).stem.lower())]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        have = ", ".join(sorted(Path(f.name).name for f in ggufs)) or "none"
        raise PullFailed(f"no single-file GGUF for quantization {quant} (files: {have})")
    raise PullFailed(f"several files match {quant}: "
                     f"{', '.join(sorted(f.name for f in matches))}")


def pull(registry: ModelRegistry, ref_text: str, progress: ProgressFn | None = None, *,
         hub: str | None = None, cancel: threading.Event | None = None) -> ModelEntry:
    """Download ``ref_text`` into the store and install it under that name.

    Args:
        registry: with a store. ref_text: curated name or ``hf.co/<owner>/<repo>[:quant]``.
        progress: called with :class:`Progress` reports (from this thread).
        hub: hub URL (default :func:`endpoint`). cancel: set to stop (partial kept).

    Raises:
        InvalidModelName, ModelNotFound: bad or unknown reference.
        PullFailed: the hub refused, the file is missing, or its checksum did not match.
        PullCancelled: ``cancel`` was set.
    """
    store = registry.store
    if store is None:
        raise CoveError("this registry has no model store")
    report = progress or (lambda p: None)
    ref = parse_ref(ref_text)
    if registry.builtin(str(ref)) is not None:
        err = ModelNotFound(str(ref))
        err.message = f"{ref} ships with Cove; there is nothing to pull"
        raise err
    repo_id, model_file, projector_file = source_of(ref)
    base = hub or endpoint()
    report(Progress("pulling manifest"))
    revision, files = _list_files(base, repo_id)
    chosen = files.get(model_file) if model_file else pick_file(files, ref.quant or DEFAULT_QUANT)
    if chosen is None:
        raise PullFailed(f"{repo_id} has no file {model_file}")
    wanted = [chosen]
    if projector_file:
        if projector_file not in files:
            raise PullFailed(f"{repo_id} has no file {projector_file}")
        wanted.append(files[projector_file])
    layers = [_fetch(store, base, repo_id, revision, f, report, cancel) for f in wanted]
    report(Progress("verifying sha256 digest"))
    metadata = read_metadata(store.blob_path(layers[0].digest))
    report(Progress("writing manifest"))
    store.write(ref, Manifest(
        str(ref), model=layers[0], projector=layers[1] if len(layers) > 1 else None,
        metadata=metadata,
        source={"kind": "pull", "repo": repo_id, "file": chosen.name, "revision": revision,
                "hub": base},
    ))
    report(Progress("success"))
    return registry.resolve(str(ref))


def _host(url: str) -> str:
    return urlparse(url).hostname or ""


def _list_files(base: str, repo_id: str) -> tuple[str, dict[str, _File]]:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    try:
        with egress_allowed(_host(base)):
            info = HfApi(endpoint=base, library_name="cove").model_info(
                repo_id, files_metadata=True, timeout=30)
    except RepositoryNotFoundError as e:
        err = ModelNotFound(f"hf.co/{repo_id}")
        err.message = f"no repository {repo_id} on {base} (or it is private or gated)"
        raise err from e
    except HfHubHTTPError as e:
        raise PullFailed(f"the hub refused to list {repo_id}: {e}") from e
    except (OSError, Exception) as e:  # noqa: BLE001 - DNS/transport errors of the HTTP library
        if isinstance(e, CoveError):
            raise
        raise PullFailed(f"cannot reach {base}: {type(e).__name__}: {e}") from e
    files: dict[str, _File] = {}
    for s in info.siblings or []:
        if s.lfs is not None and s.lfs.sha256:
            files[s.rfilename] = _File(s.rfilename, norm_digest(f"sha256:{s.lfs.sha256}"),
                                       int(s.lfs.size))
    return str(info.sha or "main"), files


def _allowed_redirect(base: str, url: str) -> bool:
    host = _host(url)
    return host == _host(base) or host in ("hf.co", "huggingface.co") or host.endswith(
        _CDN_SUFFIXES)


def _fetch(store: ModelStore, base: str, repo_id: str, revision: str, f: _File,
           report: ProgressFn, cancel: threading.Event | None) -> Layer:
    from huggingface_hub import hf_hub_url

    status = f"pulling {f.digest.removeprefix('sha256:')[:12]}"
    target = store.blob_path(f.digest)
    if target.is_file() and target.stat().st_size == f.size:
        report(Progress(status, f.digest, f.size, f.size))
        return Layer(f.digest, f.size)
    store.blobs.mkdir(parents=True, exist_ok=True)
    part = store.partial_path(f.digest)
    url = hf_hub_url(repo_id, f.name, revision=revision, endpoint=base)
    for _attempt in range(2):  # a second time only if the server ignored our Range
        have = part.stat().st_size if part.exists() else 0
        if have > f.size:
            part.unlink()
            have = 0
        sha = hashlib.sha256()
        if have:
            with part.open("rb") as fh:
                while chunk := fh.read(CHUNK):
                    sha.update(chunk)
        report(Progress(status, f.digest, f.size, have))
        if _transfer(base, url, part, have, f, sha, lambda n: report(
                Progress(status, f.digest, f.size, n)), cancel):
            break
    size = part.stat().st_size
    if size != f.size:
        raise PullFailed(f"download of {f.name} stopped at {size} of {f.size} bytes; "
                         "run the pull again to resume")
    if f"sha256:{sha.hexdigest()}" != f.digest:
        part.unlink()
        raise PullFailed(f"checksum mismatch for {f.name}: the download does not match the "
                         f"hub's sha256 {f.digest}; it was deleted")
    os.replace(part, target)
    return Layer(f.digest, f.size)


def _transfer(base: str, url: str, part: Path, have: int, f: _File, sha: Any,
              on_bytes: Callable[[int], None], cancel: threading.Event | None) -> bool:
    """Stream ``url`` from byte ``have`` into ``part``; False when the server restarted the
    file from 0 (the caller starts over)."""
    from huggingface_hub.utils import build_hf_headers, get_session

    if have >= f.size:
        return True
    headers = build_hf_headers(library_name="cove")
    headers["Range"] = f"bytes={have}-"
    session = get_session()
    for _hop in range(5):
        if not _allowed_redirect(base, url):
            raise PullFailed(f"refusing a redirect to {_host(url)}, which is not the hub")
        try:
            with egress_allowed(_host(url)), session.stream(
                    "GET", url, headers=headers, follow_redirects=False, timeout=60) as r:
                if r.status_code in (301, 302, 303, 307, 308):
                    url = urljoin(url, r.headers.get("location", ""))
                    continue
                if r.status_code == 200 and have:
                    part.unlink()
                    return False
                if r.status_code not in (200, 206):
                    raise PullFailed(f"the hub answered HTTP {r.status_code} for {f.name}")
                last = time.monotonic()
                with part.open("ab") as out:
                    for chunk in r.iter_bytes():
                        out.write(chunk)
                        sha.update(chunk)
                        have += len(chunk)
                        if cancel is not None and cancel.is_set():
                            raise PullCancelled("pull cancelled; run it again to resume")
                        if time.monotonic() - last > 0.1:
                            on_bytes(have)
                            last = time.monotonic()
                on_bytes(have)
                return True
        except CoveError:
            raise
        except Exception as e:  # noqa: BLE001 - transport errors of the HTTP library
            raise PullFailed(f"download of {f.name} interrupted at {have} bytes "
                             f"({type(e).__name__}); run the pull again to resume") from e
    raise PullFailed("too many redirects")
