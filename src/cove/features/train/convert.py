"""LoRA adapters to GGUF with llama.cpp's own converter.

``convert_lora_to_gguf.py`` (with the ``conversion`` and ``gguf-py`` packages it imports) ships
in the llama-cpp-python sdist, not in its wheel nor in the ``gguf`` package; setup
(``COVE_EXTRAS=train scripts/bootstrap.sh``) keeps them in ``<venv>/share/cove/llama.cpp``,
from the sdist of the very llama-cpp-python version Cove runs, so the GGUF it writes is one
that llama.cpp loads (``llama_adapter_lora_init``).
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

from cove.errors import InvalidRequest

SCRIPTS = Path(sys.prefix) / "share" / "cove" / "llama.cpp"


def scripts_dir() -> Path:
    """Where llama.cpp's converters are.

    Raises:
        InvalidRequest: setup has not kept them (says how to get them).
    """
    d = SCRIPTS
    if not (d / "convert_lora_to_gguf.py").is_file():
        raise InvalidRequest(
            f"llama.cpp's convert_lora_to_gguf.py is not in {d}: run "
            "`COVE_EXTRAS=train bash scripts/bootstrap.sh` (it keeps llama.cpp's converters "
            "from the llama-cpp-python sdist)", param="convert")
    return d


def lora_to_gguf(adapter: Path, base: Path, out: Path, log_file: Path) -> Path:
    """Convert the PEFT adapter folder ``adapter`` (over the HF base folder ``base``) to the
    GGUF ``out`` (f32 tensors; written to a temporary name, then renamed).

    Raises:
        InvalidRequest: the converter failed (the end of its output is in the message), or
            the disk is full.
    """
    tmp = out.with_name(out.name + ".tmp")
    tmp.unlink(missing_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with log_file.open("ab") as log:
        proc = subprocess.run(
            [sys.executable, str(scripts_dir() / "convert_lora_to_gguf.py"), "--base",
             str(base), "--outtype", "f32", "--outfile", str(tmp), str(adapter)],
            stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    if proc.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        tail = log_file.read_text("utf-8", "replace").strip().splitlines()[-3:]
        if any("No space left" in line for line in tail):
            raise InvalidRequest("the disk is full: the adapter could not be converted",
                                 param="convert")
        raise InvalidRequest("convert_lora_to_gguf.py failed: " + " | ".join(tail),
                             param="convert")
    try:
        tmp.replace(out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno == errno.ENOSPC:
            raise InvalidRequest("the disk is full", param="convert") from e
        raise
    return out
