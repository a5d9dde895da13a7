"""Small GGUF files made with the ``gguf`` package, for store and pull tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFWriter, LlamaFileType

THINK_TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|><think>\n{% endif %}"
)


def make_gguf(path: Path, *, name: str = "tiny", arch: str = "llama", n_ctx: int = 2048,
              template: str | None = None, n_floats: int = 4096, seed: int = 0) -> Path:
    """Write a small GGUF (one f32 tensor of ``n_floats`` values) with llama-style metadata."""
    w = GGUFWriter(str(path), arch)
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


def with_fim_tokens(src: Path, dst: Path, ids: tuple[int, int, int]) -> Path:
    """Copy the GGUF ``src`` to ``dst`` with ``tokenizer.ggml.fim_pre_token_id``,
    ``fim_suf_token_id`` and ``fim_mid_token_id`` set to ``ids`` (a model that can fill in the
    middle, for tests; the tokens' texts stay what they were)."""
    from gguf import GGUFReader, GGUFValueType, GGUFWriter
    from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata

    reader = GGUFReader(str(src))
    arch = reader.get_field("general.architecture")
    assert arch is not None
    writer = GGUFWriter(str(dst), arch.contents(), endianess=reader.endianess)
    keys = ("tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.fim_suf_token_id",
            "tokenizer.ggml.fim_mid_token_id")
    new = {k: MetadataDetails(GGUFValueType.UINT32, i) for k, i in zip(keys, ids, strict=True)}
    alignment = reader.get_field("general.alignment")
    if alignment is not None:
        writer.data_alignment = alignment.contents()
    copy_with_new_metadata(reader, writer, new, [])
    return dst
