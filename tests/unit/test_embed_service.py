"""The embedding service over a scripted embedder: limits, truncation, token-id inputs,
dimensions, batching, turns between requests, and a client gone between batches."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cove.config import Settings
from cove.embed_service import EmbedRequest, EmbedResult, EmbedService, plan_batches, unit_rows
from cove.errors import EngineFailure, InvalidRequest, Overloaded
from cove.models.manager import ModelManager
from cove.models.registry import ModelEntry
from tests.fake_embedder import ScriptedEmbedder


class World:
    def __init__(self, tmp_path: Path, **settings: Any) -> None:
        self.embedder = ScriptedEmbedder(n_ctx=40, n_seq_max=3)
        self.loads: list[int] = []
        self.settings = Settings(home=tmp_path, n_batch=settings.pop("n_batch", 16), **settings)
        path = tmp_path / "m.gguf"
        path.write_bytes(b"\0" * 10)
        self.entry = ModelEntry("m:latest", path)

        def load(entry: ModelEntry, s: Settings) -> ScriptedEmbedder:
            self.loads.append(s.n_ctx)
            return self.embedder

        def no_chat(entry: ModelEntry, s: Settings) -> Any:
            raise AssertionError("no chat model here")

        self.models = ModelManager(self.settings, no_chat, load)
        self.service = EmbedService(self.settings, self.models)

    def run(self, inputs: Any, cancelled: Callable[[], Awaitable[bool]] | None = None,
            **kw: Any) -> EmbedResult | None:
        request = EmbedRequest(model=None, inputs=inputs, **kw)
        return asyncio.run(self.service.embed(self.entry, request, cancelled))

    def busy(self) -> bool:
        return any(m.busy for m in self.models.loaded())


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def error(world: World, inputs: Any, **kw: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as e:
        world.run(inputs, **kw)
    assert not world.busy()
    return e.value


def test_plan_packs_in_order_within_tokens_and_inputs() -> None:
    assert plan_batches([5, 5, 5, 5], 10, 8) == [[0, 1], [2, 3]]
    assert plan_batches([5, 30, 5], 10, 8) == [[0], [1], [2]]  # a long input goes alone
    assert plan_batches([1] * 7, 100, 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert plan_batches([], 10, 3) == []


def test_unit_rows_cut_then_scale_to_unit_length() -> None:
    v = np.array([[3.0, 4.0, 12.0], [0.0, 0.0, 0.0]])
    out = unit_rows(v, 2)
    assert out.shape == (2, 2) and out.dtype == np.float32
    assert np.allclose(out[0], [0.6, 0.8]) and np.allclose(out[1], [0, 0])
    assert np.allclose(np.linalg.norm(unit_rows(v, None)[0]), 1)
    with pytest.raises(EngineFailure):
        unit_rows(np.array([[np.nan, 1.0]]), None)


def test_batches_match_inputs_embedded_alone(world: World) -> None:
    texts = [f"text number {i}"[: 5 + i] for i in range(7)]
    result = world.run(texts)
    assert result is not None and result.vectors.shape == (7, 6)
    assert result.prompt_tokens == sum(map(len, texts))
    sizes = [sum(map(len, b)) for b in world.embedder.batches]
    assert len(world.embedder.batches) < len(texts) and max(sizes) <= 16
    assert all(len(b) <= 3 for b in world.embedder.batches)
    for i, t in enumerate(texts):
        alone = world.run([t])
        assert alone is not None and np.array_equal(alone.vectors[0], result.vectors[i])
    assert np.allclose(np.linalg.norm(result.vectors, axis=1), 1, atol=1e-6)
    assert not world.busy()


def test_too_many_inputs_is_refused_before_loading(tmp_path: Path) -> None:
    w = World(tmp_path, embed_max_inputs=3)
    e = error(w, ["a"] * 4)
    assert e.param == "input" and e.code == "too_many_inputs" and "3" in e.message
    assert w.loads == [] and w.run(["a"] * 3) is not None


def test_too_many_tokens_stops_tokenizing(tmp_path: Path) -> None:
    w = World(tmp_path, embed_max_tokens=10)
    calls = 0
    tokenize = w.embedder.tokenize

    def counting(text: str) -> list[int]:
        nonlocal calls
        calls += 1
        return tokenize(text)

    w.embedder.tokenize = counting  # type: ignore[method-assign]
    e = error(w, ["abcd"] * 100)
    assert e.code == "too_many_tokens" and "10" in e.message
    assert "COVE_EMBED_MAX_TOKENS" in e.message
    assert calls == 3 and w.embedder.batches == []
    assert w.run(["abcde", "abcde"]) is not None


def test_truncate_cuts_a_long_text_and_false_refuses_it(world: World) -> None:
    long = "x" * 50
    result = world.run(["ab", long])
    assert result is not None and result.prompt_tokens == 2 + 40
    assert [len(t) for t in world.embedder.batches[-1]] == [40]
    e = error(world, ["ab", long], truncate=False)
    assert e.param == "input[1]" and e.code == "context_length_exceeded" and "40" in e.message


def test_token_ids_are_used_as_given_never_cut(world: World) -> None:
    result = world.run([[5, 6, 7], [8]])
    assert result is not None and result.prompt_tokens == 4
    assert world.embedder.batches[-1] == [[5, 6, 7], [8]]
    assert error(world, [[1] * 41]).code == "context_length_exceeded"
    e = error(world, [[1, 2], [3, 1000]])
    assert e.param == "input[1]" and "1000" in e.message
    assert error(world, [[1, -1]]).param == "input"


def test_empty_input_in_a_list_is_refused(world: World) -> None:
    assert error(world, ["a", ""]).param == "input[1]"
    assert error(world, [[1], []]).param == "input[1]"


def test_no_inputs_only_loads_the_model(world: World) -> None:
    result = world.run([], keep_alive=-1)
    assert result is not None and result.vectors.shape == (0, 6) and result.prompt_tokens == 0
    assert world.loads and world.embedder.batches == []
    assert [m.forever for m in world.models.loaded()] == [True]


def test_dimensions(world: World) -> None:
    full = world.run(["abc"])
    cut = world.run(["abc"], dimensions=2)
    assert full is not None and cut is not None and cut.vectors.shape == (1, 2)
    assert np.allclose(cut.vectors[0], full.vectors[0][:2] / np.linalg.norm(full.vectors[0][:2]))
    same = world.run(["abc"], dimensions=99)  # Ollama: more than the model has is the whole
    assert same is not None and np.array_equal(same.vectors, full.vectors)
    e = error(world, ["abc"], dimensions=7, strict_dimensions=True)
    assert e.param == "dimensions" and "6" in e.message
    assert world.run(["abc"], dimensions=6, strict_dimensions=True) is not None


def test_num_ctx_loads_the_embedder_with_that_context(world: World) -> None:
    world.run(["a"], num_ctx=128)
    assert world.loads == [128]


def test_a_client_gone_between_batches_stops_the_rest(world: World) -> None:
    asked = 0

    async def gone_after_first_batch() -> bool:
        nonlocal asked
        asked += 1
        return len(world.embedder.batches) >= 1

    texts = ["abcdefgh"] * 9  # 16-token batches of 2: five batches
    assert world.run(texts, cancelled=gone_after_first_batch) is None
    assert len(world.embedder.batches) == 1 and asked >= 2
    assert not world.busy()


def test_a_client_gone_while_waiting_runs_nothing(world: World) -> None:
    async def gone() -> bool:
        return True

    assert world.run(["abc"], cancelled=gone) is None
    assert world.embedder.batches == [] and not world.busy()


def test_requests_take_turns_batch_by_batch(world: World) -> None:
    async def go() -> None:
        a = EmbedRequest(model=None, inputs=["a" * 16] * 3)
        b = EmbedRequest(model=None, inputs=["b" * 16] * 3)
        # loaded first, so that both reach their first turn together (a load taking a while
        # under a busy machine let ``a`` run batches before ``b`` asked)
        await world.service.embed(world.entry, EmbedRequest(model=None, inputs=[]))
        await asyncio.gather(world.service.embed(world.entry, a),
                             world.service.embed(world.entry, b))

    asyncio.run(go())
    order = [chr(batch[0][0]) for batch in world.embedder.batches]
    assert order in (["a", "b"] * 3, ["b", "a"] * 3)  # whoever asked first, then in turn


def test_more_waiting_requests_than_max_queue_is_503(tmp_path: Path) -> None:
    w = World(tmp_path, max_queue=1)
    w.embedder.gate = threading.Event()

    async def go() -> None:
        first = asyncio.ensure_future(w.service.embed(w.entry, EmbedRequest(None, ["a"])))
        second = asyncio.ensure_future(w.service.embed(w.entry, EmbedRequest(None, ["b"])))
        await asyncio.to_thread(w.embedder.started.wait, 5)
        with pytest.raises(Overloaded):
            await w.service.embed(w.entry, EmbedRequest(None, ["c"]))
        assert w.embedder.gate is not None
        w.embedder.gate.set()
        assert all(await asyncio.gather(first, second))

    asyncio.run(go())
    assert not w.busy()
