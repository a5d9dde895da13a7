"""Training jobs: checks before anything starts, the training process, and the served result.

:func:`prepare` checks everything that can be checked without torch (the extra is installed,
the base model exists and has a GGUF file, the dataset is valid, the new name is free and valid,
reward names and files) and writes the job's spec; :func:`run` starts
``python -m cove.features.train.worker`` in a process of its own (never the server's), relays
its events and, when it finished, registers the new model: a manifest whose weights are the
base's GGUF and whose ``adapter`` is the converted LoRA GGUF. A run that stopped or failed
registers nothing (its checkpoints stay for ``--resume``).

Runs live under ``<COVE_HOME>/train/runs/<name>/`` (``spec.json``, ``checkpoints/``,
``adapter/``, ``adapter.gguf``, ``train.log``); dequantized bases under
``<COVE_HOME>/train/base/``.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cove.config import Settings
from cove.errors import Conflict, CoveError, InvalidRequest
from cove.features.train import data as D
from cove.features.train import rewards as R
from cove.models.names import parse_ref
from cove.models.registry import ModelEntry, ModelRegistry
from cove.models.store import Layer, Manifest

EXTRA = ("torch", "transformers", "peft", "trl", "datasets", "accelerate")
STOPPED = 3  # the worker's exit status when stopped by a signal


class TrainUnavailable(InvalidRequest):
    """The optional extra ``cove[train]`` is not installed."""


class TrainFailed(CoveError):
    """The training process reported an error or died."""

    status = 500
    code = "train_failed"


@dataclass
class Options:
    """What every recipe takes (see :func:`cove.features.train.recipes.train`)."""

    max_steps: int | None = None
    epochs: float = 1.0
    lr: float = 2e-4
    lora_rank: int = 8
    batch_size: int = 2
    seed: int = 0
    save_steps: int = 50
    held_out: int = 4
    max_new_tokens: int = 128
    num_generations: int = 4
    temperature: float = 1.0
    rewards: dict[str, float] = field(default_factory=dict)
    reward_files: list[str] = field(default_factory=list)
    system: str | None = None
    resume: bool = False

    def check(self) -> None:
        """Raises:
            InvalidRequest: an option out of range (names it).
        """
        bad = [(self.max_steps is not None and self.max_steps < 1, "max_steps", ">= 1"),
               (self.epochs <= 0, "epochs", "> 0"), (not 0 < self.lr < 1, "lr", "in (0, 1)"),
               (not 1 <= self.lora_rank <= 256, "lora_rank", "in 1..256"),
               (self.batch_size < 1, "batch_size", ">= 1"),
               (self.save_steps < 1, "save_steps", ">= 1"),
               (self.held_out < 0, "held_out", ">= 0"),
               (not 1 <= self.max_new_tokens <= 4096, "max_new_tokens", "in 1..4096"),
               (self.num_generations < 2, "num_generations", ">= 2 (GRPO compares a group)"),
               (not 0 < self.temperature <= 2, "temperature", "in (0, 2]")]
        for wrong, name, rule in bad:
            if wrong:
                raise InvalidRequest(f"{name} must be {rule}", param=name)


def require_extra() -> None:
    """Raises:
        TrainUnavailable: a package of ``cove[train]`` is missing (one message saying what to
            install).
    """
    missing = [m for m in EXTRA if importlib.util.find_spec(m) is None]
    if missing:
        raise TrainUnavailable(
            f"training needs the optional extra cove[train] (missing: {', '.join(missing)}): "
            "pip install 'cove[train]' (in a Cove checkout: COVE_EXTRAS=train bash "
            "scripts/bootstrap.sh; see README, Training, for CPU and CUDA builds of torch)",
            param="train")


def run_dir(settings: Settings, name: str) -> Path:
    """``<COVE_HOME>/train/runs/<name>`` for the validated model name ``name``."""
    ref = parse_ref(name)
    return settings.home / "train" / "runs" / "_".join([*ref.parts, ref.tag])


def prepare(settings: Settings, registry: ModelRegistry, recipe: str, base: str,
            data_path: Path, name: str, opts: Options) -> dict[str, Any]:
    """Check a job and write its spec; returns the spec (see :mod:`worker`).

    Raises:
        TrainUnavailable, ModelNotFound (base), InvalidModelName (name), DatasetError,
        Conflict (name taken; a run of that name exists and ``resume`` is not set),
        InvalidRequest (options, rewards, nothing to resume), RewardFailed (reward file).
    """
    require_extra()
    opts.check()
    entry = registry.resolve(base)
    if entry.adapter is not None:
        raise InvalidRequest(f"{entry.name!r} is itself a trained adapter; train over its base "
                             f"{entry.parent!r}", param="base")
    from cove.features.train.base import check_architecture

    check_architecture(entry.meta().get("architecture"), entry.name)
    try:
        new = str(parse_ref(name))
    except CoveError as e:
        raise InvalidRequest(f"{name!r} is not a valid model name (lower-case letters, digits, "
                             "'.', '_', '-', an optional namespace/ and :tag)",
                             param="name") from e
    try:
        registry.resolve(new)
        raise Conflict(f"a model named {new!r} exists; choose another --name", param="name")
    except CoveError as e:
        if isinstance(e, Conflict):
            raise
    examples = D.load(data_path, need_answer=recipe == "sft")
    files = [Path(f).resolve() for f in opts.reward_files]
    names = [R.load_reward_file(f)[0] for f in files]  # a broken file fails here
    if recipe == "grpo":
        opts.rewards = opts.rewards or {"format": 1.0, "accuracy": 1.0}
        R.parse_weights([f"{k}={v}" for k, v in opts.rewards.items()], names)
    elif not opts.rewards:
        opts.rewards = {"format": 1.0, "accuracy": 1.0}  # only scored on the held-out split
    if opts.held_out >= len(examples):
        opts.held_out = len(examples) - 1
    rd = run_dir(settings, new)
    if rd.exists() and not opts.resume:
        raise Conflict(f"a training run named {new!r} exists in {rd}: pass --resume to "
                       "continue it, or choose another --name", param="name")
    if opts.resume and not any((rd / "checkpoints").glob("checkpoint-*")):
        raise InvalidRequest(f"no checkpoint of {new!r} to resume in {rd}", param="resume")
    rd.mkdir(parents=True, exist_ok=True)
    spec = {
        "recipe": recipe, "name": new, "run_dir": str(rd),
        "base": {"name": entry.name, "path": str(entry.path), "digest": entry.sha256(),
                 "arch": entry.meta().get("architecture"), "bundled": entry.bundled,
                 "size": entry.size, "store_digest": entry.digest},
        "base_root": str(settings.home / "train" / "base"),
        "data": str(data_path.resolve()), "data_digest": D.digest(data_path),
        "examples": len(examples), "held_out": opts.held_out,
        "options": asdict(opts), "reward_files": [str(f) for f in files],
    }
    (rd / "spec.json").write_text(json.dumps(spec, indent=1))
    return spec


def run(spec: dict[str, Any], registry: ModelRegistry,
        on_event: Callable[[dict[str, Any]], None], *, python: str = sys.executable
        ) -> dict[str, Any]:
    """Run the job in its own process and register the model when it is done.

    A first SIGINT (Ctrl-C) or SIGTERM here is passed on to the training process, which saves
    a checkpoint and stops; a second one kills it.

    Returns:
        the last event: ``done`` (with ``model``: the new name), or ``stopped``.

    Raises:
        TrainFailed: the training process reported an error (its message) or died.
        Conflict: another job is running in this ``COVE_HOME``.
    """
    rd = Path(spec["run_dir"])
    lock = (rd.parent.parent / ".lock").open("w")  # one training job at a time per COVE_HOME
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise Conflict("another training job is running (one at a time)", param="train") from None
    try:
        return _run(spec, registry, on_event, python, rd)
    finally:
        lock.close()


def _run(spec: dict[str, Any], registry: ModelRegistry,
         on_event: Callable[[dict[str, Any]], None], python: str, rd: Path) -> dict[str, Any]:
    log = (rd / "train.log").open("ab")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([python, "-m", "cove.features.train.worker", str(rd / "spec.json")],
                            stdout=subprocess.PIPE, stderr=log, env=env,
                            start_new_session=True)
    signals = {"n": 0}

    def forward(signum: int, frame: Any) -> None:
        signals["n"] += 1
        try:
            proc.send_signal(signal.SIGINT if signals["n"] == 1 else signal.SIGKILL)
        except ProcessLookupError:
            pass
        on_event({"event": "log", "message": "stopping after this step (saving a checkpoint)"
                  if signals["n"] == 1 else "killed"})

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    last: dict[str, Any] = {}
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            last = ev
            if ev.get("event") not in ("done", "error"):
                on_event(ev)
        code = proc.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        log.close()
    if last.get("event") == "error":
        raise TrainFailed(last.get("message") or "training failed", param=last.get("param"))
    if code == STOPPED or last.get("event") == "stopped":
        return last
    if code != 0 or last.get("event") != "done":
        raise TrainFailed(f"the training process ended with status {code} (see "
                          f"{rd / 'train.log'})")
    last["model"] = register(registry, spec, last)
    on_event(last)
    return last


def register(registry: ModelRegistry, spec: dict[str, Any], done: dict[str, Any]) -> str:
    """Install the trained model ``spec["name"]``: the base's weights plus the adapter GGUF.

    Raises:
        Conflict: the name was taken meanwhile.
    """
    store = registry.store
    assert store is not None
    ref = parse_ref(spec["name"])
    if store.read(ref) is not None:
        raise Conflict(f"a model named {spec['name']!r} was created meanwhile", param="name")
    base = registry.resolve(spec["base"]["name"])
    adapter = store.add_blob(Path(done["adapter_gguf"]), link=False)
    source = {"kind": "train", "recipe": spec["recipe"], "base": base.name,
              "base_digest": spec["base"]["digest"], "dataset": spec["data"],
              "dataset_digest": spec["data_digest"], "examples": spec["examples"],
              "held_out": spec["held_out"], "steps": done["steps"],
              "rewards": spec["options"]["rewards"], "scores": done.get("scores"),
              "options": {k: spec["options"][k] for k in ("lr", "lora_rank", "epochs",
                                                          "max_steps", "batch_size")},
              "trained": time.time()}
    manifest = Manifest(name=str(ref), adapter=adapter, source=source, base=base.name,
                        system=spec["options"].get("system") or base.system,
                        options=dict(base.options), metadata=dict(base.metadata or {}))
    if base.bundled or base.digest is None:
        manifest.bundled = _bundled_name(registry, base)
    else:
        manifest.model = Layer(base.digest, base.size)
    store.write(ref, manifest)
    return str(ref)


def _bundled_name(registry: ModelRegistry, base: ModelEntry) -> str:
    """The built-in model whose weights ``base`` (the bundled model or a preset of it) uses."""
    for entry in registry.list():
        if entry.bundled and entry.path == base.path:
            return entry.name
    raise InvalidRequest(f"base {base.name!r} has no weights in the store", param="base")
