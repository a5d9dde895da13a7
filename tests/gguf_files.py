"""Small GGUF files made with the ``gguf`` package, for store and pull tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter, LlamaFileType

THINK_TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|><think>\n{% endif %}"
)


def make_gguf(path: Path, *, name: str = "tiny", arch: str = "llama", n_ctx: int = 2048,
              template: str | None = None, n_floats: int = 4096, seed: int = 0,
              ints: dict[str, int] | None = None) -> Path:
    """Write a small GGUF (one f32 tensor of ``n_floats`` values) with llama-style metadata
    and the extra integer keys ``ints``."""
    w = GGUFWriter(str(path), arch)
    for key, value in (ints or {}).items():
        w.add_uint32(key, value)
    w.add_name(name)
    w.add_context_length(n_ctx)
    w.add_embedding_length(64)
    w.add_block_count(2)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_file_type(LlamaFileType.ALL_F32)
    w.add_license("apache-2.0")
    if template is not None:
        w.add_chat_template(template)
    rng = np.random.default_rng(seed)
    w.add_tensor("token_embd.weight", rng.standard_normal(n_floats).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path

# GGUF keys of the fill-in-the-middle tokens (prefix, suffix, middle), as llama.cpp reads them
FIM_KEYS = ("tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.fim_suf_token_id",
            "tokenizer.ggml.fim_mid_token_id")


def rewrite_gguf(src: Path, dst: Path, *, template: str | None = None,
                 ints: dict[str, int] | None = None) -> Path:
    """Copy the GGUF ``src`` to ``dst`` with the same tensors, its chat template replaced by
    ``template`` (when given) and the integer keys ``ints`` added (the way the ``gguf``
    package's ``gguf_new_metadata`` script rewrites a model)."""
    reader = GGUFReader(str(src))
    arch = reader.fields["general.architecture"].contents()
    w = GGUFWriter(str(dst), arch, endianess=reader.endianess)
    for field in reader.fields.values():
        if field.name == "general.architecture" or field.name.startswith("GGUF."):
            continue
        if template is not None and field.name == "tokenizer.chat_template":
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == GGUFValueType.ARRAY else None
        w.add_key_value(field.name, field.contents(), vtype, sub_type=sub)
    if template is not None:
        w.add_chat_template(template)
    for key, value in (ints or {}).items():
        w.add_uint32(key, value)
    for t in reader.tensors:
        w.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for t in reader.tensors:
        w.write_tensor_data(t.data, tensor_endianess=reader.endianess)
    w.close()
    return dst
