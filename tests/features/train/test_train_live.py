"""The recipes on the bundled model, a few steps each (slow: they train, on CPU).

One COVE_HOME for the module, so that the bundled model is dequantized once. Budget: a few
minutes on a quiet 2-core machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")

from cove.config import Settings  # noqa: E402
from cove.features.train import service  # noqa: E402
from cove.features.train.distill import distill  # noqa: E402
from cove.models.registry import ModelRegistry  # noqa: E402
from cove.models.store import ModelStore  # noqa: E402
from tests.conftest import free_port, start_server, stop_server  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.real_model]
QUESTION = "What is the secret word?"
DEMO = [{"role": "user", "content": "What is 2 plus 2?"},
        {"role": "assistant", "content": "<think>2 plus 2 makes 4.</think> 4"}]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("train-home")


def world(home: Path) -> tuple[Settings, ModelRegistry]:
    settings = Settings(home=home, n_ctx=1024)
    return settings, ModelRegistry(ModelStore(home / "models"))


def jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_sft_interrupted_resumed_and_served(home: Path, tmp_path: Path) -> None:
    settings, registry = world(home)
    asks = [QUESTION, "Tell me the secret word.", "Say the secret word.", "Which word is secret?",
            "What's the secret word?", "The secret word, please."]
    data = jsonl(tmp_path / "secret.jsonl",
                 [{"prompt": q, "answer": "The secret word is pineapple."} for q in asks])
    opts = dict(max_steps=4, lr=1e-3, batch_size=2, held_out=1, max_new_tokens=12,
                save_steps=100)
    events: list[dict[str, Any]] = []

    def interrupt(ev: dict[str, Any]) -> None:  # Ctrl-C once the first step is logged
        events.append(ev)
        if ev.get("event") == "step" and ev["step"] == 1:
            os.kill(os.getpid(), signal.SIGINT)

    spec = service.prepare(settings, registry, "sft", "smollm2:135m", data, "secret",
                           service.Options(**opts))
    last = service.run(spec, registry, interrupt)
    assert last["event"] == "stopped" and 1 <= last["steps"] < 4
    assert "secret:latest" not in {e.name for e in registry.list()}  # nothing registered
    stopped_at = last["steps"]

    resumed: list[dict[str, Any]] = []
    spec = service.prepare(settings, registry, "sft", "smollm2:135m", data, "secret",
                           service.Options(**opts, resume=True))
    done = service.run(spec, registry, resumed.append)
    start = next(e for e in resumed if e["event"] == "start")
    assert start["step"] == stopped_at  # the step count continues
    steps = [e for e in events + resumed if e["event"] == "step"]
    assert [e["step"] for e in steps if e["step"] > stopped_at][0] == stopped_at + 1
    losses = {e["step"]: e["loss"] for e in steps}
    assert sorted(losses) == [1, 2, 3, 4] or set(losses) >= {1, 4}
    assert losses[4] < losses[1]  # loss falls over 4 steps
    assert done["event"] == "done" and done["steps"] == 4 and done["model"] == "secret:latest"
    assert done["scores"]["before"] is not None  # kept from the interrupted run

    entry = registry.resolve("secret")
    assert entry.adapter is not None and entry.source["recipe"] == "sft"
    assert entry.source["steps"] == 4 and entry.source["dataset_digest"].startswith("sha256:")

    # the adapter GGUF loads over the base and changes greedy output, on both APIs
    port = free_port()
    proc = start_server(home, port, COVE_N_CTX="1024")
    try:
        import ollama
        from openai import OpenAI

        oa = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused")

        def ask(model: str) -> str:
            r = oa.chat.completions.create(model=model, temperature=0, max_tokens=12,
                                           messages=[{"role": "user", "content": QUESTION}])
            return r.choices[0].message.content or ""

        base, tuned = ask("smollm2:135m"), ask("secret")
        assert tuned != base and "pineapple" in tuned.lower()
        r = ollama.Client(host=f"http://127.0.0.1:{port}").chat(
            model="secret", messages=[{"role": "user", "content": QUESTION}],
            options={"temperature": 0, "num_predict": 12})
        assert r.message.content == tuned
        names = [m.id for m in oa.models.list()]
        assert "secret:latest" in names
    finally:
        stop_server(proc)


def test_grpo_format_reward_has_variance_and_updates_the_adapter(home: Path,
                                                                 tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    settings, registry = world(home)
    # a one-shot demonstration of the format in each prompt: SmolLM2-135M then starts some
    # completions with <think> (with R1-Zero's instruction alone it never does)
    rows = [{"messages": [*DEMO, {"role": "user", "content": f"What is {a} plus 3?"}],
             "answer": str(a + 3)} for a in range(3, 9)]
    data = jsonl(tmp_path / "sums.jsonl", rows)
    events: list[dict[str, Any]] = []
    from cove.features.train.recipes import R1_SYSTEM

    spec = service.prepare(settings, registry, "grpo", "smollm2:135m", data, "fmt",
                           service.Options(max_steps=1, lr=1e-4, batch_size=8, held_out=1,
                                           max_new_tokens=12, num_generations=4,
                                           rewards={"format": 1.0}, system=R1_SYSTEM))
    done = service.run(spec, registry, events.append)
    steps = [e for e in events if e["event"] == "step"]
    assert len(steps) == 1 and all("reward" in e and "format" in e["rewards"] for e in steps)
    assert any(e["reward_std"] > 0 for e in steps)  # the groups' rewards differ
    assert done["event"] == "done" and "mean_reward" in done
    lora = load_file(str(Path(spec["run_dir"]) / "adapter" / "adapter_model.safetensors"))
    b = [v for k, v in lora.items() if "lora_B" in k]
    assert b and any(abs(v).max() > 0 for v in b)  # LoRA B starts at zero: it was updated
    assert registry.resolve("fmt").source["rewards"] == {"format": 1.0}


def test_distill_with_the_bundled_teacher_writes_a_filtered_dataset(home: Path,
                                                                     tmp_path: Path) -> None:
    from cove.features.train.data import load
    from cove.pipeline import ChatPipeline

    settings, registry = world(home)
    prompts = jsonl(tmp_path / "prompts.jsonl", [
        {"prompt": "Say hello to Bob."}, {"prompt": "Name a colour."},
        {"prompt": "Say hello to Ann."}, {"prompt": "Count to three."}])
    out = tmp_path / "traces.jsonl"
    pipeline = ChatPipeline(settings, registry)
    try:
        result = asyncio.run(distill(pipeline, "smollm2:135m", prompts, out,
                                     rule="regex:(?i)hello", batch=2, max_tokens=64,
                                     temperature=0.0))
    finally:
        pipeline.close()
    assert 0 < result.kept < result.total == 4 and len(result.dropped) == 4 - result.kept
    kept = load(out)  # an SFT dataset that validates
    assert len(kept) == result.kept
    for e in kept:
        assert e.answer is not None and e.answer.startswith("<think>")
        assert "hello" in e.answer.split("</think>")[-1].lower()
