"""The training recipes, run inside the training process (:mod:`cove.features.train.worker`).

- SFT: TRL's ``SFTTrainer`` on conversational prompt/completion pairs (loss on the answer only)
  with a PEFT LoRA adapter on every linear projection of the attention and MLP blocks.
- GRPO: TRL's ``GRPOTrainer`` (generation by transformers, no vLLM) with the rule rewards of
  :mod:`cove.features.train.rewards`, weighted (``reward_weights``); groups of
  ``num_generations`` completions per prompt (DeepSeekMath, section 4.1).

Both save checkpoints (adapter, optimizer, scheduler, trainer state) every ``save_steps`` and
when stopped (SIGINT/SIGTERM), so that ``resume`` continues at the saved step. Before and
after training the held-out split is answered greedily and scored by the same rules.
Progress goes out through ``emit(event: dict)``.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cove.features.train import rewards as R
from cove.features.train.data import Example

Emit = Callable[[dict[str, Any]], None]
R1_SYSTEM = ("A conversation between User and Assistant. The user asks a question, and the "
             "Assistant solves it. The assistant first thinks about the reasoning process in "
             "the mind and then provides the user with the answer. The reasoning process is "
             "enclosed within <think> </think> tags, then the answer follows, i.e., <think> "
             "reasoning process here </think> answer here.")  # R1-Zero's template, Table 1


def _messages(e: Example, system: str | None) -> list[dict[str, str]]:
    msgs = [dict(m) for m in e.messages]
    if system and msgs[0]["role"] != "system":
        msgs.insert(0, {"role": "system", "content": system})
    return msgs


def lora_config(rank: int) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                      "up_proj", "down_proj"])


def evaluate(model: Any, tok: Any, examples: list[Example], system: str | None,
             weights: dict[str, float], fns: dict[str, R.Reward],
             max_new_tokens: int) -> dict[str, float]:
    """Greedy answers to ``examples``, scored: ``formatted`` (share in the strict
    ``<think>…</think>`` answer format), ``accuracy`` (share right, of those with a
    reference), and the mean of every reward in ``weights``."""
    import torch

    if not examples:
        return {}
    model.eval()
    sums: dict[str, float] = {name: 0.0 for name in weights}
    formatted = right = with_ref = 0
    for e in examples:
        ids = tok.apply_chat_template(_messages(e, system), add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id or tok.eos_token_id)
        text = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        formatted += R.is_formatted(text)
        if e.answer is not None or e.tests:
            with_ref += 1
            right += R.accuracy_reward(e.prompt, text, e.answer, e.tests) > 0
        for name in weights:
            sums[name] += R.score(name, fns[name], e.prompt, text, e.answer, e.tests)
    model.train()
    scores = {"formatted": formatted / len(examples)}
    if with_ref:
        scores["accuracy"] = right / with_ref
    scores.update({f"reward_{k}": v / len(examples) for k, v in sums.items()})
    return scores


class _Stop:
    """SIGINT/SIGTERM set ``requested``; the callback then saves and stops the trainer."""

    def __init__(self) -> None:
        self.requested = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True


def _callback(emit: Emit, stop: _Stop, recipe: str) -> Any:
    from transformers import TrainerCallback

    class Progress(TrainerCallback):  # type: ignore[misc]
        start = 0.0
        first = 0
        rewards: list[float] = []
        zero_std_steps = 0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.start, self.first = time.monotonic(), state.global_step
            emit({"event": "start", "step": state.global_step, "max_steps": state.max_steps})

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if stop.requested:
                control.should_save = True
                control.should_training_stop = True

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None,
                   **kw: Any) -> None:
            logs = logs or {}
            if "train_runtime" in logs:
                return
            done = state.global_step - self.first
            rate = done / max(time.monotonic() - self.start, 1e-9)
            eta = (state.max_steps - state.global_step) / rate if rate > 0 else None
            ev: dict[str, Any] = {"event": "step", "step": state.global_step,
                                  "max_steps": state.max_steps, "eta": eta}
            for key in ("loss", "reward", "reward_std", "frac_reward_zero_std",
                        "learning_rate"):
                if key in logs and isinstance(logs[key], int | float):
                    ev[key] = float(logs[key])
            ev["rewards"] = {k.split("/")[1]: float(v) for k, v in logs.items()
                             if k.startswith("rewards/") and k.endswith("/mean")}
            emit(ev)
            if "reward" in ev:
                self.rewards.append(ev["reward"])
            if recipe == "grpo" and ev.get("frac_reward_zero_std", 0.0) >= 1.0:
                self.zero_std_steps += 1
                emit({"event": "warning", "step": state.global_step,
                      "message": "every group's rewards were equal at this step (zero "
                                 "variance): GRPO learns nothing from it; use a graded reward, "
                                 "more generations, a higher temperature, or a prompt that "
                                 "shows the format (see README, Training)"})

    return Progress()


def _grpo_reward(name: str, fn: R.Reward) -> Callable[..., list[float]]:
    def reward(prompts: list[Any], completions: list[Any], **cols: Any) -> list[float]:
        out = []
        for i, c in enumerate(completions):
            text = c[-1]["content"] if isinstance(c, list) else str(c)
            p = prompts[i][-1]["content"] if isinstance(prompts[i], list) else str(prompts[i])
            out.append(R.score(name, fn, p, text, (cols.get("answer") or [None] * len(
                completions))[i], (cols.get("tests") or [None] * len(completions))[i]))
        return out

    reward.__name__ = name
    return reward


def train(recipe: str, base_dir: Path, run_dir: Path, train_set: list[Example],
          held_out: list[Example], opts: dict[str, Any], fns: dict[str, R.Reward],
          emit: Emit) -> dict[str, Any]:
    """Run ``recipe`` (``sft`` or ``grpo``) and save the adapter to ``run_dir/adapter``.

    ``opts``: ``max_steps`` (None: ``epochs`` over the data), ``epochs``, ``lr``,
    ``lora_rank``, ``batch_size``, ``seed``, ``save_steps``, ``resume``, ``system``,
    ``max_new_tokens`` (completions and evaluation), ``num_generations``, ``temperature``,
    ``rewards`` (name -> weight).

    Returns:
        ``{"status": "done"|"stopped", "steps", "scores": {"before", "after"}, ...}``.
    """
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(opts["seed"])
    stop = _Stop()
    tok = AutoTokenizer.from_pretrained(base_dir)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    system = opts.get("system")
    weights: dict[str, float] = opts["rewards"]
    ckpt_dir = run_dir / "checkpoints"
    resume = opts.get("resume") and _latest(ckpt_dir)
    eval_tokens = opts["max_new_tokens"]
    before = None
    if not resume:
        emit({"event": "log", "message": f"scoring {len(held_out)} held-out examples"})
        before = evaluate(model, tok, held_out, system, weights, fns, eval_tokens)
        emit({"event": "eval", "when": "before", "scores": before})
    common: dict[str, Any] = dict(
        output_dir=str(ckpt_dir), learning_rate=opts["lr"], num_train_epochs=opts["epochs"],
        max_steps=opts["max_steps"] or -1, per_device_train_batch_size=opts["batch_size"],
        logging_steps=1, save_steps=opts["save_steps"], save_total_limit=2, report_to="none",
        use_cpu=True, disable_tqdm=True, seed=opts["seed"], dataloader_num_workers=0,
        lr_scheduler_type="constant", warmup_steps=0, bf16=False, fp16=False)
    progress = _callback(emit, stop, recipe)
    if recipe == "sft":
        from trl import SFTConfig, SFTTrainer

        rows: list[dict[str, Any]] = [
            {"prompt": _messages(e, system),
             "completion": [{"role": "assistant", "content": e.answer or ""}]}
            for e in train_set]
        trainer: Any = SFTTrainer(model=model, args=SFTConfig(**common, max_length=1024),
                             train_dataset=Dataset.from_list(rows), processing_class=tok,
                             peft_config=lora_config(opts["lora_rank"]),
                             callbacks=[progress])
    else:
        from trl import GRPOConfig, GRPOTrainer

        rows = [{"prompt": _messages(e, system), "answer": e.answer, "tests": e.tests}
                for e in train_set]
        n_gen = opts["num_generations"]
        common["per_device_train_batch_size"] = max(opts["batch_size"], n_gen)
        cfg = GRPOConfig(**common, num_generations=n_gen,
                         max_completion_length=opts["max_new_tokens"],
                         temperature=opts["temperature"], use_vllm=False, beta=0.0,
                         reward_weights=list(weights.values()))
        trainer = GRPOTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(rows),
                              processing_class=tok,
                              reward_funcs=[_grpo_reward(n, fns[n])  # type: ignore[misc]
                                            for n in weights],
                              peft_config=lora_config(opts["lora_rank"]),
                              callbacks=[progress])
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    steps = trainer.state.global_step
    if stop.requested:
        return {"status": "stopped", "steps": steps, "checkpoint": str(_latest(ckpt_dir)),
                "scores": {"before": before}}
    adapter = run_dir / "adapter"
    trainer.model.save_pretrained(adapter)
    after = evaluate(trainer.model, tok, held_out, system, weights, fns, eval_tokens)
    emit({"event": "eval", "when": "after", "scores": after})
    loss = result.training_loss if math.isfinite(result.training_loss) else None
    out = {"status": "done", "steps": steps, "adapter": str(adapter), "train_loss": loss,
           "scores": {"before": before, "after": after}}
    if progress.rewards:
        out["mean_reward"] = sum(progress.rewards) / len(progress.rewards)
        out["zero_variance_steps"] = progress.zero_std_steps
    return out


def _latest(ckpt_dir: Path) -> Path | None:
    """The checkpoint folder with the highest step, or None."""
    found = [p for p in ckpt_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None
