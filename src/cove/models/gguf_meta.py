"""GGUF metadata, read with the ``gguf`` package (llama.cpp's reference reader).

Source of the keys: the GGUF specification (ggml-org/ggml ``docs/gguf.md``): ``general.*``,
``<arch>.context_length``, ``<arch>.block_count``, ``tokenizer.chat_template``, ...
Reading a file maps it read-only; nothing is loaded into RAM beyond the header. Summaries can be
cached on disk (see :func:`read_metadata`).
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from cove.errors import InvalidRequest
from cove.models.capabilities import served

GGUF_MAGIC = b"GGUF"
_SKIP_ARRAYS = ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
                "tokenizer.ggml.scores")


def is_gguf(path: Path) -> bool:
    """Whether ``path`` is a regular file starting with the GGUF magic bytes."""
    try:
        with path.open("rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def _value(field: Any) -> Any:
    try:
        v = field.contents()
    except Exception:  # noqa: BLE001 - an unreadable field is left out, not fatal
        return None
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    return v


def read_metadata(path: Path, cache_dir: Path | None = None) -> dict[str, Any]:
    """Summarise a GGUF file's metadata as a JSON-able dict.

    The ``gguf`` reader parses every vocabulary entry (about 2 s for a 49k-token vocabulary on
    2 cores), so summaries are memoised per process and, when ``cache_dir`` is given, on disk
    as ``<cache_dir>/<key>.json`` keyed by path, size and mtime (a changed file is read again).

    Keys: ``architecture``, ``name``, ``parameter_count`` (int, summed over tensors),
    ``parameter_size`` (e.g. ``"135M"``), ``quantization`` (e.g. ``"Q4_K_M"``),
    ``context_length`` (trained, tokens), ``embedding_length``, ``block_count``,
    ``head_count_kv``, ``chat_template`` (str or None), ``license`` (str or None),
    ``capabilities`` (what Cove serves: :func:`cove.models.capabilities.served`),
    ``kv`` (every scalar/string key, and short arrays, as in Ollama's ``model_info``).

    Raises:
        InvalidRequest: the file is not a readable GGUF file.
    """
    if not is_gguf(path):
        raise InvalidRequest(f"{path.name} is not a GGUF file (no GGUF header)", param="file")
    st = path.stat()
    if cache_dir is None:
        return dict(_read_cached(str(path), st.st_size, st.st_mtime_ns))
    key = hashlib.sha256(f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()
    cached = cache_dir / f"{key[:32]}.json"
    try:
        return dict(json.loads(cached.read_text()))
    except (OSError, ValueError):
        pass
    meta = dict(_read_cached(str(path), st.st_size, st.st_mtime_ns))
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(meta))
        tmp.replace(cached)
    except (OSError, TypeError, ValueError):  # a cache that cannot be written is only slower
        pass
    return meta


@lru_cache(maxsize=32)
def _read_cached(path: str, size: int, mtime_ns: int) -> dict[str, Any]:
    import gguf

    try:
        reader = gguf.GGUFReader(path)
    except Exception as e:  # noqa: BLE001 - any parse failure means "not a usable GGUF"
        # the reader's own exceptions (numpy index errors, struct errors) mean nothing to a
        # client and are internals: say what is wrong with the file instead
        raise InvalidRequest("cannot read GGUF metadata: the file is truncated or corrupt",
                             param="file") from e
    kv: dict[str, Any] = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in _SKIP_ARRAYS:
            continue
        v = _value(field)
        if isinstance(v, list) and len(v) > 64:
            continue
        kv[key] = v
    arch = str(kv.get("general.architecture") or "unknown")
    n_params = sum(int(t.n_elements) for t in reader.tensors)
    file_type = kv.get("general.file_type")
    try:
        quant = gguf.LlamaFileType(int(file_type if file_type is not None else -1)).name
        quant = quant.removeprefix("MOSTLY_").removeprefix("ALL_")
    except (TypeError, ValueError):
        quant = "unknown"
    template = kv.get("tokenizer.chat_template")
    return {
        "architecture": arch,
        "name": kv.get("general.name"),
        "parameter_count": n_params,
        "parameter_size": kv.get("general.size_label") or human_params(n_params),
        "quantization": quant,
        "context_length": kv.get(f"{arch}.context_length"),
        "embedding_length": kv.get(f"{arch}.embedding_length"),
        "block_count": kv.get(f"{arch}.block_count"),
        "head_count": kv.get(f"{arch}.attention.head_count"),
        "head_count_kv": kv.get(f"{arch}.attention.head_count_kv"),
        "chat_template": template if isinstance(template, str) else None,
        "license": kv.get("general.license"),
        "capabilities": served(arch, kv, template if isinstance(template, str) else None),
        "kv": kv,
    }


def human_params(n: int) -> str:
    """``134515008`` -> ``"135M"``; ``7_615_616_512`` -> ``"7.6B"``."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            v = n / scale
            return f"{v:.1f}{unit}".replace(".0", "") if v < 10 else f"{v:.0f}{unit}"
    return str(n)
