"""The model manager: several models within a budget, LRU unloading, keep_alive."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from cove.config import Settings
from cove.engine.fake import ScriptedEngine
from cove.models.manager import ModelManager
from cove.models.registry import ModelEntry


def entry(tmp_path: Path, name: str, size: int) -> ModelEntry:
    path = tmp_path / f"{name}.bin"
    path.write_bytes(b"\0" * size)
    return ModelEntry(f"{name}:latest", path)


def manager(tmp_path: Path, **kw: object) -> tuple[ModelManager, dict[str, ScriptedEngine]]:
    engines: dict[str, ScriptedEngine] = {}

    def loader(e: ModelEntry, s: Settings) -> ScriptedEngine:
        engines[e.name] = ScriptedEngine(name=e.name, n_ctx=s.n_ctx)
        return engines[e.name]

    kw.setdefault("prompt_cache_mb", 0)  # these tests count the weights' bytes
    return ModelManager(Settings(home=tmp_path, **kw), loader), engines  # type: ignore[arg-type]


def names(m: ModelManager) -> set[str]:
    return {x.entry.name for x in m.loaded()}


def test_lru_unloads_least_recently_used_idle_model(tmp_path: Path) -> None:
    m, engines = manager(tmp_path, memory_budget=2500)
    a, b, c = (entry(tmp_path, n, 1000) for n in "abc")

    async def go() -> None:
        (await m.acquire(a)).release()
        (await m.acquire(b)).release()
        (await m.acquire(a)).release()  # a is now more recent than b
        (await m.acquire(c)).release()
        assert names(m) == {"a:latest", "c:latest"}
        assert engines["b:latest"].closed and not engines["a:latest"].closed

    asyncio.run(go())
    m.close()


def test_max_loaded_models_and_busy_models_are_kept(tmp_path: Path) -> None:
    m, engines = manager(tmp_path, max_loaded_models=1)
    m._wait = 0.3
    a, b = entry(tmp_path, "a", 10), entry(tmp_path, "b", 10)

    async def go() -> None:
        held = await m.acquire(a)
        try:
            await m.acquire(b)
        except Exception as e:  # noqa: BLE001
            assert type(e).__name__ == "Overloaded"
        else:
            raise AssertionError("loaded b while a was busy and only one model fits")
        held.release()
        (await m.acquire(b)).release()
        assert names(m) == {"b:latest"} and engines["a:latest"].closed

    asyncio.run(go())
    m.close()


def test_too_big_alone_is_a_clear_error(tmp_path: Path) -> None:
    m, _ = manager(tmp_path, memory_budget=100)

    async def go() -> str:
        try:
            await m.acquire(entry(tmp_path, "huge", 1000))
        except Exception as e:  # noqa: BLE001
            return str(e)
        return ""

    assert "memory budget" in asyncio.run(go())


def test_a_chat_model_counts_the_prompt_cache_in_its_memory(tmp_path: Path) -> None:
    weights = entry(tmp_path, "w", 1000)  # (no GGUF metadata: no KV estimate)
    fits, _ = manager(tmp_path, memory_budget=(1 << 20) + 1000, prompt_cache_mb=1)
    short, _ = manager(tmp_path, memory_budget=(1 << 20) + 999, prompt_cache_mb=1)

    async def go(m: ModelManager) -> str:
        try:
            (await m.acquire(weights)).release()
        except Exception as e:  # noqa: BLE001
            return str(e)
        return "loaded"

    assert asyncio.run(go(fits)) == "loaded"
    assert "memory budget" in asyncio.run(go(short))
    fits.close()
    short.close()


def test_a_chat_model_needs_a_kv_stream_per_slot(tmp_path: Path) -> None:
    from tests.gguf_files import make_gguf

    model = ModelEntry("g:latest", make_gguf(tmp_path / "g.gguf"))
    kv_per_slot = 2 * 2 * 1024 * (64 * 2 // 4) * 2  # layers, cells, kv width, f16 (K and V)
    budget = model.size + kv_per_slot + 100

    async def go(n_parallel: int) -> str:
        m, _ = manager(tmp_path, memory_budget=budget, n_ctx=1024, n_parallel=n_parallel)
        try:
            (await m.acquire(model)).release()
        except Exception as e:  # noqa: BLE001
            return str(e)
        finally:
            m.close()
        return "loaded"

    assert asyncio.run(go(1)) == "loaded"
    assert "memory budget" in asyncio.run(go(2))


def test_keep_alive_expiry_zero_and_forever(tmp_path: Path) -> None:
    m, engines = manager(tmp_path)
    a, b, c = (entry(tmp_path, n, 10) for n in "abc")

    async def go() -> None:
        (await m.acquire(a)).release(0.3)
        (await m.acquire(b)).release(0)
        (await m.acquire(c)).release(-1)
        deadline = time.monotonic() + 30  # left as soon as done; a loaded machine is slow
        while names(m) != {"c:latest"} and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert names(m) == {"c:latest"}
        assert engines["a:latest"].closed and engines["b:latest"].closed
        assert m.loaded()[0].forever and m.loaded()[0].expires_wall() is None

    asyncio.run(go())
    m.close()
    assert engines["c:latest"].closed


def test_in_use_models_never_expire(tmp_path: Path) -> None:
    m, engines = manager(tmp_path)
    a = entry(tmp_path, "a", 10)

    async def go() -> None:
        held = await m.acquire(a)
        (await m.acquire(a)).release(0)  # another request ends, but one is still running
        await asyncio.sleep(0.8)
        assert names(m) == {"a:latest"}
        held.release(0)
        deadline = time.monotonic() + 5
        while names(m) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not names(m)

    asyncio.run(go())
    m.close()


def test_num_ctx_reloads_an_idle_model(tmp_path: Path) -> None:
    m, engines = manager(tmp_path)
    a = entry(tmp_path, "a", 10)

    async def go() -> None:
        (await m.acquire(a)).release()
        first = engines["a:latest"]
        (await m.acquire(a, num_ctx=512)).release()
        assert first.closed and engines["a:latest"].info.n_ctx == 512
        (await m.acquire(a)).release()  # no num_ctx asked: keep what is loaded
        assert m.loaded()[0].n_ctx == 512

    asyncio.run(go())
    m.close()


def test_close_does_not_free_an_engine_still_decoding() -> None:
    import threading

    from cove.engine.scheduler import Scheduler
    from cove.engine.types import SamplingParams
    from cove.models.manager import Loaded

    release = threading.Event()

    class Stuck(ScriptedEngine):
        def decode(self, feeds: list[tuple[int, list[int], bool]]) -> None:
            release.wait(5)  # a decode step that outlasts the close timeout
            super().decode(feeds)

    eng = Stuck(n_slots=1)
    sched = Scheduler(eng)

    async def go() -> None:
        sched.submit([1, 2], SamplingParams())
        await asyncio.sleep(0.05)  # the worker is now inside decode

    asyncio.run(go())
    real_close = sched.close
    sched.close = lambda timeout=0.1: real_close(timeout)  # type: ignore[method-assign]
    loaded = Loaded(ModelEntry("x:latest", Path("/nonexistent/x.gguf")), "chat", eng, sched,
                    512, 0)
    ModelManager._close(loaded)
    assert not eng.closed  # freed later, never under a running step
    release.set()
    assert real_close(5)
