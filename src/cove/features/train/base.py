"""Base models for training: an installed GGUF, dequantized once into a Hugging Face folder.

transformers loads GGUF files of the architectures it lists in
``transformers.modeling_gguf_pytorch_utils.GGUF_SUPPORTED_ARCHITECTURES`` (llama, qwen2,
qwen3, gemma3, mistral, phi3, …), dequantizing every tensor to float32. That takes a while,
so the result is saved once per base digest under ``<COVE_HOME>/train/base/<digest>/``
(``config.json``, ``model.safetensors``, the tokenizer with its chat template) and reused.

A model loaded from GGUF keeps transformers' GGUF "quantizer" (``hf_quantizer``,
``is_quantized``, ``config.quantization_config``), which makes ``save_pretrained`` refuse and
PEFT treat the model as quantized; the weights are plain float32 by then, so it is cleared.

Runs in the training process only (imports torch and transformers).
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path
from typing import Any

from cove.errors import InvalidRequest

MARK = "cove-base.json"


class UnsupportedArchitecture(InvalidRequest):
    """transformers cannot load this GGUF architecture."""


def supported() -> list[str]:
    """The GGUF architectures transformers can load (``general.architecture`` values)."""
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    return sorted(a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in ("general", "tokenizer"))


def check_architecture(arch: str | None, model: str) -> None:
    """Raises:
        UnsupportedArchitecture: ``arch`` is not one transformers loads from GGUF.
    """
    names = supported()
    if arch not in names:
        raise UnsupportedArchitecture(
            f"model {model!r} has architecture {arch or 'unknown'!r}, which transformers "
            f"cannot load from GGUF for training (it can: {', '.join(names)})", param="base")


def clear_quantizer(model: Any) -> None:
    """Forget the GGUF quantizer of a model loaded with ``gguf_file=`` (its weights are
    already dequantized), so that it can be saved and trained."""
    for attr, value in (("hf_quantizer", None), ("is_quantized", False),
                        ("quantization_method", None)):
        if hasattr(model, attr):
            setattr(model, attr, value)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def hf_folder(gguf: Path, digest: str, arch: str | None, model: str, root: Path,
              log: Any = None) -> Path:
    """The Hugging Face folder of the GGUF ``gguf`` (made on first use, atomically).

    Args:
        digest: ``sha256:<hex>`` of the GGUF (the cache key).
        arch: its ``general.architecture``.
        model: its Cove name (for messages).
        root: ``<COVE_HOME>/train/base``.
        log: ``log(message)`` for progress lines, or None.

    Raises:
        UnsupportedArchitecture: see :func:`check_architecture`.
        InvalidRequest: the disk filled up while saving (nothing is left behind).
    """
    check_architecture(arch, model)
    target = root / digest.split(":")[-1][:32]
    if (target / MARK).is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if log:
        log(f"dequantizing {model} to a Hugging Face folder (once per base model)")
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    hf = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                              dtype=torch.float32)
    clear_quantizer(hf)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        hf.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / MARK).write_text(json.dumps({"model": model, "digest": digest, "arch": arch}))
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if e.errno == errno.ENOSPC:
            raise InvalidRequest(f"the disk is full: no room for the base model under {root}",
                                 param="base") from e
        raise
    return target
