"""Datasets, rewards and the checks made before a training process starts (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cove.config import Settings
from cove.errors import Conflict, ModelNotFound
from cove.features.train import data as D
from cove.features.train import rewards as R
from cove.features.train import service
from cove.models.registry import ModelEntry, ModelRegistry
from tests.gguf_files import make_gguf


def flat(text: str) -> str:
    return " ".join(text.split())


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_both_shapes_load(tmp_path: Path) -> None:
    f = write(tmp_path / "d.jsonl", [
        json.dumps({"messages": [{"role": "system", "content": "Be brief."},
                                 {"role": "user", "content": "Hi"},
                                 {"role": "assistant", "content": "Hello."}]}),
        "",
        json.dumps({"prompt": "2+2?", "solution": 4}),
        json.dumps({"prompt": "Write f.", "answer": "def f(): ...", "tests": "assert f"}),
    ])
    ex = D.load(f)
    assert [e.line for e in ex] == [1, 3, 4]
    assert ex[0].answer == "Hello." and ex[0].messages[0]["role"] == "system"
    assert ex[1].answer == "4" and ex[1].prompt == "2+2?"
    assert ex[2].tests == "assert f"


def test_bad_lines_are_refused_with_their_numbers(tmp_path: Path) -> None:
    f = write(tmp_path / "bad.jsonl", [
        json.dumps({"prompt": "ok", "answer": "yes"}),
        "{not json",
        json.dumps(["a list"]),
        json.dumps({"prompt": "no answer"}),
        json.dumps({"messages": [{"role": "robot", "content": "x"}]}),
        json.dumps({"messages": [{"role": "user", "content": "only a question"}]}),
        json.dumps({"text": "unknown shape"}),
    ])
    with pytest.raises(D.DatasetError) as e:
        D.load(f)
    lines = [n for n, _ in e.value.problems]
    assert lines == [2, 3, 4, 5, 6, 7]
    msg = e.value.message
    assert "line 2: not JSON" in msg and "line 4: needs 'answer' or 'solution'" in msg
    assert "messages[0].role" in msg and "line 7" in msg
    # GRPO and distillation take prompts without a final answer
    only_q = write(tmp_path / "q.jsonl", [json.dumps({"messages": [
        {"role": "user", "content": "only a question"}]})])
    assert D.load(only_q, need_answer=False)[0].answer is None


def test_empty_and_missing_datasets(tmp_path: Path) -> None:
    with pytest.raises(D.DatasetError, match="no examples"):
        D.load(write(tmp_path / "empty.jsonl", ["", "  "]))
    with pytest.raises(D.DatasetError, match="cannot read"):
        D.load(tmp_path / "missing.jsonl")
    (tmp_path / "latin.jsonl").write_bytes(b'{"prompt": "caf\xe9", "answer": "x"}\n')
    with pytest.raises(D.DatasetError, match="line 1: not UTF-8"):
        D.load(tmp_path / "latin.jsonl")


def test_split_keeps_one_for_training(tmp_path: Path) -> None:
    f = write(tmp_path / "d.jsonl", [json.dumps({"prompt": f"q{i}", "answer": "a"})
                                     for i in range(5)])
    ex = D.load(f)
    train, held = D.split(ex, 2, seed=1)
    assert len(train) == 3 and len(held) == 2
    assert not {e.line for e in train} & {e.line for e in held}
    assert len(D.split(ex, 99)[0]) == 1


def test_format_reward() -> None:
    assert R.format_reward("", "<think>2+2 is 4</think> 4", None, None) == 1.0
    assert R.format_reward("", "<think>no close", None, None) == 0.25
    assert R.format_reward("", "<think>a</think>", None, None) == 0.5  # no answer after it
    assert R.format_reward("", "4", None, None) == 0.0
    assert R.is_formatted("\n<think>\nx\n</think>\n\nAnswer: 4")


@pytest.mark.parametrize(("completion", "reference", "ok"), [
    ("<think>..</think> Paris.", "paris", True),                # exact, case and period aside
    ("<think>..</think> The answer is 0.5", "1/2", True),       # numeric, exact fractions
    ("<think>..</think> It is \\boxed{2*(x+1)}", "2x+2", True),  # sympy-equal
    ("<think>..</think> 3", "4", False),
    ("<think>..</think> x+1", "x+2", False),
])
def test_accuracy_reward(completion: str, reference: str, ok: bool) -> None:
    assert R.accuracy_reward("", completion, reference, None) == float(ok)


def test_code_answers_run_against_tests_in_the_sandbox() -> None:
    tests = "assert add(2, 3) == 5"
    good = "<think>easy</think>\n```python\ndef add(a, b):\n    return a + b\n```"
    bad = "<think>easy</think>\n```python\ndef add(a, b):\n    return a - b\n```"
    escape = "```python\nimport socket\nsocket.socket()\ndef add(a, b): return a + b\n```"
    assert R.accuracy_reward("", good, None, tests) == 1.0
    assert R.accuracy_reward("", bad, None, tests) == 0.0
    assert R.accuracy_reward("", escape, None, tests) == 0.0  # the sandbox refuses sockets
    assert R.accuracy_reward("", "no code at all", None, tests) == 0.0


def test_reward_files_and_weights(tmp_path: Path) -> None:
    good = tmp_path / "short.py"
    good.write_text("def reward(prompt, completion, answer):\n    return 1 / len(completion)\n")
    name, fn = R.load_reward_file(good)
    assert name == "short" and R.score(name, fn, "p", "abcd", None, None) == 0.25
    with pytest.raises(R.RewardFailed, match=r"ZeroDivisionError.*line 2 of short.py"):
        R.score(name, fn, "p", "", None, None)
    broken = tmp_path / "broken.py"
    broken.write_text("import nothing_of_that_name\n")
    with pytest.raises(R.RewardFailed, match="broken.py failed to load: ModuleNotFoundError"):
        R.load_reward_file(broken)
    nan = tmp_path / "nan.py"
    nan.write_text("def reward(p, c, a):\n    return float('nan')\n")
    with pytest.raises(R.RewardFailed, match="not a finite number"):
        R.score("nan", R.load_reward_file(nan)[1], "p", "c", None, None)
    assert R.parse_weights(["format=0.5", "accuracy", "short=2"], ["short"]) == {
        "format": 0.5, "accuracy": 1.0, "short": 2.0}
    with pytest.raises(Exception, match="unknown reward 'length'"):
        R.parse_weights(["length=1"])


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    from cove.models.store import ModelStore

    reg = ModelRegistry(ModelStore(tmp_path / "home" / "models"))
    reg.add(ModelEntry("mamba-ish:latest", make_gguf(tmp_path / "m.gguf", arch="rwkv6")))
    return reg


def test_checks_before_any_process_starts(tmp_path: Path, registry: ModelRegistry,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("transformers")
    settings = Settings(home=tmp_path / "home")
    data = write(tmp_path / "d.jsonl", [json.dumps({"prompt": "q", "answer": "a"})] * 3)
    opts = service.Options(max_steps=1)
    with pytest.raises(ModelNotFound):
        service.prepare(settings, registry, "sft", "nope:1b", data, "new", opts)
    with pytest.raises(Exception, match="architecture 'rwkv6'.*cannot load from GGUF.*llama"):
        service.prepare(settings, registry, "sft", "mamba-ish", data, "new", opts)
    with pytest.raises(Conflict, match="a model named 'smollm2:135m' exists"):
        service.prepare(settings, registry, "sft", "smollm2:135m", data, "smollm2:135m", opts)
    with pytest.raises(Exception, match="not a valid model name"):
        service.prepare(settings, registry, "sft", "smollm2:135m", data, "../evil", opts)
    with pytest.raises(Exception, match="no checkpoint of 'fresh:latest' to resume"):
        service.prepare(settings, registry, "sft", "smollm2:135m", data, "fresh",
                        service.Options(resume=True))
    with pytest.raises(Exception, match="lora_rank must be"):
        service.prepare(settings, registry, "sft", "smollm2:135m", data, "x",
                        service.Options(lora_rank=0))
    # the missing extra: one message saying what to install
    real = service.importlib.util.find_spec
    monkeypatch.setattr(service.importlib.util, "find_spec",
                        lambda n: None if n in ("trl", "peft") else real(n))
    with pytest.raises(service.TrainUnavailable,
                       match=r"cove\[train\] \(missing: peft, trl\): pip install 'cove\[train\]'"):
        service.prepare(settings, registry, "sft", "smollm2:135m", data, "new", opts)
    assert not (tmp_path / "home" / "train" / "runs" / "new_latest").exists()


def test_cli_refuses_a_bad_dataset_with_line_numbers(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("transformers")
    from click.testing import CliRunner

    from cove.cli.main import cli

    monkeypatch.setenv("COVE_HOME", str(tmp_path / "home"))
    bad = write(tmp_path / "bad.jsonl", [json.dumps({"prompt": "q", "answer": "a"}), "[]"])
    r = CliRunner().invoke(cli, ["train", "sft", "--base", "smollm2:135m", "--data", str(bad),
                                 "--name", "x"])
    assert r.exit_code == 1 and "line 2: expected a JSON object" in flat(r.output)
    r = CliRunner().invoke(cli, ["train", "distill", "--teacher", "absent:7b", "--prompts",
                                 str(bad), "--out", str(tmp_path / "o.jsonl")])
    assert r.exit_code == 1 and "line 2" in flat(r.output)  # the prompts are checked first
    good = write(tmp_path / "p.jsonl", [json.dumps({"prompt": "q", "answer": "a"})])
    r = CliRunner().invoke(cli, ["train", "distill", "--teacher", "absent:7b", "--prompts",
                                 str(good), "--out", str(tmp_path / "o.jsonl")])
    assert r.exit_code == 1 and "absent:7b" in flat(r.output) and "does not exist" in flat(r.output)
    assert not (tmp_path / "o.jsonl").exists()
