"""The training process: ``python -m cove.features.train.worker SPEC.json``.

Started by :mod:`cove.features.train.service`, never inside the server. It writes one JSON
event per line to its standard output (``start``, ``step``, ``eval``, ``log``, ``warning``,
then ``done``, ``stopped`` or ``error``); everything the libraries print goes to standard
error (the run's ``train.log``). SIGINT/SIGTERM stop it cleanly after the current step, with a
checkpoint. Exit status: 0 done, 3 stopped, 1 error.

SPEC (written by the service): ``recipe``, ``run_dir``, ``base`` (``name``, ``path``,
``digest``, ``arch``), ``base_root``, ``data`` (path), ``held_out``, ``options`` (see
:func:`cove.features.train.recipes.train`), ``reward_files``.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any, TextIO

from cove.errors import CoveError

NICE = 10  # training yields the CPU to serving


def _events() -> TextIO:
    """A stream for events on the real stdout; stdout itself then points at stderr."""
    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def run(spec: dict[str, Any], emit: Any) -> int:
    from cove.features.train import base, convert, data, recipes
    from cove.features.train import rewards as R

    run_dir = Path(spec["run_dir"])
    opts = spec["options"]
    fns: dict[str, R.Reward] = dict(R.BUILTIN)
    for f in spec.get("reward_files", []):
        name, fn = R.load_reward_file(Path(f))
        fns[name] = fn
    examples = data.load(Path(spec["data"]), need_answer=spec["recipe"] == "sft")
    train_set, held_out = data.split(examples, spec["held_out"], opts["seed"])
    b = spec["base"]
    base_dir = base.hf_folder(Path(b["path"]), b["digest"], b["arch"], b["name"],
                              Path(spec["base_root"]),
                              log=lambda m: emit({"event": "log", "message": m}))
    convert.scripts_dir()  # fail before training, not after
    result = recipes.train(spec["recipe"], base_dir, run_dir, train_set, held_out, opts, fns,
                           emit)
    before_file = run_dir / "before.json"
    scores = result.get("scores") or {}
    if scores.get("before") is not None:
        before_file.write_text(json.dumps(scores["before"]))
    elif before_file.is_file():
        scores["before"] = json.loads(before_file.read_text())
    if result["status"] == "stopped":
        emit({"event": "stopped", "steps": result["steps"], "checkpoint": result["checkpoint"]})
        return 3
    emit({"event": "log", "message": "converting the adapter to GGUF"})
    gguf = convert.lora_to_gguf(Path(result["adapter"]), base_dir, run_dir / "adapter.gguf",
                                run_dir / "convert.log")
    done: dict[str, Any] = {"event": "done", "steps": result["steps"],
                            "adapter_gguf": str(gguf), "train_loss": result.get("train_loss"),
                            "scores": scores, "peak_rss": _peak_rss()}
    done.update({k: result[k] for k in ("mean_reward", "zero_variance_steps") if k in result})
    emit(done)
    return 0


def _peak_rss() -> int:
    """Peak resident memory of this process in bytes (training; the converter is a child)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> int:
    from cove.privacy import install_egress_guard

    events = _events()

    def emit(ev: dict[str, Any]) -> None:
        events.write(json.dumps(ev) + "\n")

    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                      TOKENIZERS_PARALLELISM="false", TRANSFORMERS_VERBOSITY="error")
    install_egress_guard()
    try:
        os.nice(NICE)
    except OSError:
        pass
    spec = json.loads(Path(sys.argv[1]).read_text("utf-8"))
    try:
        return run(spec, emit)
    except CoveError as e:
        emit({"event": "error", "message": e.message, "param": e.param})
    except OSError as e:
        import errno

        msg = ("the disk is full" if e.errno == errno.ENOSPC else f"{type(e).__name__}: {e}")
        emit({"event": "error", "message": msg})
    except KeyboardInterrupt:
        emit({"event": "stopped", "steps": None, "checkpoint": None})
        return 3
    except Exception as e:  # noqa: BLE001 - reported to the parent, traceback to the log
        traceback.print_exc()
        full = "the disk is full" if "No space left on device" in str(e) else None
        emit({"event": "error", "message": full or f"{type(e).__name__}: {e}"})
    return 1


if __name__ == "__main__":
    sys.exit(main())
