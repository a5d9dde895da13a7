"""Model options by Ollama's names (``num_ctx``, ``temperature``, ``num_predict``, ...).

Used by presets (defaults stored with a model) and by the Ollama API's ``options`` object.
Source of the names and meanings: Ollama's ``api.Options`` (docs/modelfile.md, "PARAMETER").
Unknown options are ignored, as Ollama does; a known option with a bad value is an error.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cove.engine.types import SamplingParams
from cove.errors import InvalidRequest


class ModelOptions(BaseModel):
    """The options Cove honours. ``num_predict`` -1 or -2: no limit (until the context is
    full); ``num_ctx``: context window in tokens (the model is reloaded with it)."""

    model_config = ConfigDict(extra="ignore")

    num_ctx: int | None = Field(None, ge=64, le=1 << 20)
    num_predict: int | None = Field(None, ge=-2)
    temperature: float | None = Field(None, ge=0.0, le=5.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    seed: int | None = None
    stop: list[str] | None = Field(None, max_length=16)
    repeat_penalty: float | None = Field(None, gt=0.0)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)


# option name -> SamplingParams field
_SAMPLING = {
    "num_predict": "max_tokens", "temperature": "temperature", "top_p": "top_p",
    "top_k": "top_k", "min_p": "min_p", "seed": "seed", "stop": "stop",
    "repeat_penalty": "repeat_penalty", "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}
# SamplingParams field -> option name
SAMPLING_TO_OPTION = {v: k for k, v in _SAMPLING.items()}


# Ollama's other option names (api.Options and api.Runner, current and retired): accepted in
# presets and ignored, like unknown names in a request; any other name in a preset is a typo.
OLLAMA_ONLY = frozenset({
    "num_batch", "num_gpu", "main_gpu", "use_mmap", "use_mlock", "num_thread", "numa",
    "low_vram", "f16_kv", "logits_all", "vocab_only", "num_keep", "typical_p", "repeat_last_n",
    "tfs_z", "mirostat", "mirostat_tau", "mirostat_eta", "penalize_newline",
})


def check_option_names(raw: Any, param: str = "parameters") -> None:
    """Refuse option names neither Cove nor Ollama knows (``temprature``), as ``ollama create``
    does for a Modelfile's ``PARAMETER``; used for presets, where a typo would otherwise be
    stored and silently do nothing.

    Raises:
        InvalidRequest: an unknown name (``param`` names it).
    """
    if not isinstance(raw, dict):
        return
    known = set(ModelOptions.model_fields)
    for name in raw:
        if name not in known and name not in OLLAMA_ONLY:
            raise InvalidRequest(f"unknown parameter {name!r}; Cove's are: "
                                 + ", ".join(sorted(known)), param=f"{param}.{name}")


def validate_options(raw: Any, param: str = "options") -> dict[str, Any]:
    """Check ``raw`` (a dict of options) and return only the known options that are set.

    Raises:
        InvalidRequest: not an object, or a known option has a bad value (``param`` names it).
    """
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{param} must be an object", param=param)
    if isinstance(raw.get("stop"), str):
        raw = {**raw, "stop": [raw["stop"]]}
    try:
        opts = ModelOptions.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        raise InvalidRequest(f"invalid value for {param}.{where}: {err.get('msg')}",
                             param=f"{param}.{where}") from e
    return opts.model_dump(exclude_none=True)


def to_sampling(options: dict[str, Any], base: SamplingParams | None = None) -> SamplingParams:
    """Sampling parameters from validated ``options`` over ``base`` (llama.cpp defaults)."""
    values = dict((base or SamplingParams()).__dict__)
    for name, value in options.items():
        target = _SAMPLING.get(name)
        if target is None:
            continue
        if target == "max_tokens" and value is not None and value < 0:
            value = None
        if target == "stop":
            value = tuple(s for s in value if s)
        values[target] = value
    return SamplingParams(**values)


def sampling_fields(options: dict[str, Any]) -> frozenset[str]:
    """The SamplingParams fields that ``options`` sets."""
    return frozenset(_SAMPLING[n] for n in options if n in _SAMPLING)
