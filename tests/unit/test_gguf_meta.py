"""GGUF metadata summaries and their on-disk cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cove.errors import InvalidRequest
from cove.models import gguf_meta
from cove.models.gguf_meta import read_metadata
from tests.gguf_files import THINK_TEMPLATE, make_gguf


def test_summary_of_a_gguf_file(tmp_path: Path) -> None:
    meta = read_metadata(make_gguf(tmp_path / "m.gguf", name="tiny", n_ctx=4096,
                                   template=THINK_TEMPLATE))
    assert (meta["architecture"], meta["name"], meta["context_length"]) == ("llama", "tiny", 4096)
    assert (meta["block_count"], meta["head_count_kv"], meta["parameter_count"]) == (2, 2, 4096)
    assert "thinking" in meta["capabilities"]


def test_summary_is_cached_on_disk_until_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make_gguf(tmp_path / "m.gguf", n_ctx=4096)
    cache = tmp_path / "cache"
    first = read_metadata(model, cache)
    assert len(list(cache.glob("*.json"))) == 1
    reads: list[str] = []

    def counted(path: str, size: int, mtime_ns: int) -> dict[str, object]:
        reads.append(path)
        return {"context_length": 1}

    monkeypatch.setattr(gguf_meta, "_read_cached", counted)
    assert read_metadata(model, cache) == first  # from the cache file: the reader is not run
    assert reads == []
    st = model.stat()
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert read_metadata(model, cache) == {"context_length": 1}  # a changed file is read again
    assert len(reads) == 1


def test_unwritable_cache_only_costs_time(tmp_path: Path) -> None:
    model = make_gguf(tmp_path / "m.gguf")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert read_metadata(model, blocker / "cache")["architecture"] == "llama"


@pytest.mark.parametrize("cut", [24, 40, 200])
def test_a_truncated_gguf_is_a_clear_400_without_the_readers_exception(tmp_path: Path,
                                                                      cut: int) -> None:
    # an upload cut short (or a header claiming more tensors than the file has): the gguf
    # reader raised numpy's "index 0 is out of bounds for axis 0 with size 0", sent to clients
    whole = make_gguf(tmp_path / "whole.gguf")
    part = tmp_path / "part.gguf"
    part.write_bytes(whole.read_bytes()[:cut])
    with pytest.raises(InvalidRequest) as e:
        read_metadata(part)
    assert "truncated or corrupt" in e.value.message
    assert "axis" not in e.value.message and "index" not in e.value.message
