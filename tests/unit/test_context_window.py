"""COVE_N_CTX=auto: a window per slot that follows the model's trained length where the memory
budget allows, from the KV size per token in GGUF metadata."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cove.config import Settings
from cove.models.manager import AUTO_MIN_CTX, auto_context, context_window, kv_bytes_per_token
from cove.models.registry import ModelEntry, bundled_model_path
from tests.gguf_files import make_gguf
from tests.unit.test_manager import manager

MB = 1 << 20


def settings(**kw: object) -> Settings:
    return Settings(**{"prompt_cache_mb": 0, "n_parallel": 4, **kw})  # type: ignore[arg-type]


def tiny(tmp_path: Path, n_ctx: int) -> ModelEntry:
    return ModelEntry("g:latest", make_gguf(tmp_path / f"g{n_ctx}.gguf", n_ctx=n_ctx))


def test_kv_bytes_per_token_from_gguf_metadata(tmp_path: Path) -> None:
    # 2 layers x 2 KV heads x (16 + 16) head dims (64 / 4 heads) x 2 bytes
    assert kv_bytes_per_token(tiny(tmp_path, 2048)) == 2 * 2 * 32 * 2
    # SmolLM2-135M: 30 layers, 3 KV heads, head dim 64: 22.5 KiB a token
    assert kv_bytes_per_token(ModelEntry("smollm2:135m", bundled_model_path())) == 30 * 3 * 128 * 2
    assert kv_bytes_per_token(ModelEntry("x:latest", tmp_path / "missing.gguf")) == 0


def test_auto_follows_the_trained_length_when_it_fits(tmp_path: Path) -> None:
    smol = ModelEntry("smollm2:135m", bundled_model_path())
    assert auto_context(smol, settings(), budget=16 << 30) == 8192  # SmolLM2's trained length
    assert context_window(smol, settings(n_ctx="auto", memory_budget=16 << 30)) == 8192
    big = tiny(tmp_path, 1 << 20)  # a million-token model
    per_token = kv_bytes_per_token(big) * 4
    budget = 2 * (big.size + 20_000 * per_token)
    window = auto_context(big, settings(), budget)
    assert window % 256 == 0 and 20_000 - 256 < window <= 20_000  # half the budget, no more
    assert big.size + window * per_token <= budget // 2
    assert auto_context(big, settings(), budget=1 * MB) == AUTO_MIN_CTX  # never below 4096
    assert auto_context(tiny(tmp_path, 2048), settings(), budget=1 * MB) == 2048
    assert auto_context(ModelEntry("x:latest", tmp_path / "none.gguf"), settings(), 1 << 40) == 4096


def test_explicit_window_and_embed_cap(tmp_path: Path) -> None:
    big = tiny(tmp_path, 32768)
    assert context_window(big, settings(n_ctx=2048)) == 2048
    assert context_window(big, settings(), "embed") == 8192


def test_the_prompt_cache_and_slots_count_against_the_budget(tmp_path: Path) -> None:
    big = tiny(tmp_path, 1 << 20)
    budget = 1 << 30
    one = auto_context(big, settings(n_parallel=1), budget)
    four = auto_context(big, settings(n_parallel=4), budget)
    cached = auto_context(big, settings(n_parallel=4, prompt_cache_mb=256), budget)
    assert one > four > cached


def test_the_manager_loads_with_the_auto_window(tmp_path: Path) -> None:
    m, engines = manager(tmp_path, memory_budget=16 << 30)
    model = tiny(tmp_path, 16384)

    async def go() -> None:
        (await m.acquire(model)).release()
        (await m.acquire(model, num_ctx=1024)).release()  # a request's num_ctx still wins

    asyncio.run(go())
    assert [x.n_ctx for x in m.loaded()] == [1024]
    m.close()
    m, engines = manager(tmp_path, memory_budget=16 << 30)
    asyncio.run(m.acquire(model)).release()
    assert engines["g:latest"].info.n_ctx == 16384
    m.close()


@pytest.mark.parametrize("value,expected", [("auto", "auto"), ("AUTO", "auto"), ("8192", 8192),
                                            (2048, 2048)])
def test_n_ctx_setting(value: object, expected: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COVE_N_CTX", str(value))
    assert Settings().n_ctx == expected


@pytest.mark.parametrize("value", ["soon", "12", "-1", "true"])
def test_bad_n_ctx_is_refused(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("COVE_N_CTX", value)
    with pytest.raises(ValidationError, match="n_ctx"):
        Settings()
    monkeypatch.delenv("COVE_N_CTX")
    assert Settings().n_ctx == "auto"
