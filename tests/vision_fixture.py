"""A tiny vision projector (mmproj GGUF) for the bundled SmolLM2-135M, generated with the
``gguf`` package, so that the real libmtmd path runs in the tests without a download.

The layout is llama.cpp's LLaVA-style CLIP (``clip.projector_type = mlp``; tensor names from
``tools/mtmd/clip-impl.h``, loader ``clip_model_loader::load_tensors``, graph
``models/llava.cpp``): a 32x32 image cut into 8x8 patches (16 patches, so 16 image tokens), a
two-block ViT of width 32, and the two-layer MLP projector ``mm.0`` (32 -> 64), GELU, ``mm.2``
(64 -> 576, SmolLM2-135M's ``n_embd``). The weights are random (seeded), so an image changes
the model's output in a way that depends on its pixels, and nothing more.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

N_EMBD_TEXT = 576  # SmolLM2-135M
IMAGE_SIZE = 32
PATCH = 8
WIDTH = 32
N_FF = 64
N_HEAD = 2
N_LAYER = 2  # llava's graph runs all but the last block
N_TOKENS = (IMAGE_SIZE // PATCH) ** 2


def write_projector(path: Path, seed: int = 0, image_size: int = IMAGE_SIZE,
                    patch: int = PATCH) -> Path:
    """Write the tiny projector to ``path`` and return it (``image_size`` / ``patch`` squared
    image tokens: 16 by default)."""
    import gguf

    rng = np.random.default_rng(seed)

    def w(*shape: int, scale: float = 0.2) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_string("general.name", "cove-test-projector")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_text_encoder", False)
    writer.add_string("clip.projector_type", "mlp")
    writer.add_bool("clip.use_gelu", True)
    writer.add_uint32("clip.vision.image_size", image_size)
    writer.add_uint32("clip.vision.patch_size", patch)
    writer.add_uint32("clip.vision.embedding_length", WIDTH)
    writer.add_uint32("clip.vision.feed_forward_length", N_FF)
    writer.add_uint32("clip.vision.projection_dim", N_EMBD_TEXT)
    writer.add_uint32("clip.vision.attention.head_count", N_HEAD)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    writer.add_uint32("clip.vision.block_count", N_LAYER)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])

    # numpy shapes are ggml's ne reversed: a linear layer is (out, in)
    n_tokens = (image_size // patch) ** 2
    writer.add_tensor("v.patch_embd.weight", w(WIDTH, 3, patch, patch))
    writer.add_tensor("v.patch_embd.bias", w(WIDTH))
    writer.add_tensor("v.position_embd.weight", w(n_tokens, WIDTH))
    writer.add_tensor("v.pre_ln.weight", np.ones(WIDTH, np.float32))
    writer.add_tensor("v.pre_ln.bias", np.zeros(WIDTH, np.float32))
    for i in range(N_LAYER):
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            writer.add_tensor(f"v.blk.{i}.{name}.weight", w(WIDTH, WIDTH))
            writer.add_tensor(f"v.blk.{i}.{name}.bias", w(WIDTH))
        for name in ("ln1", "ln2"):
            writer.add_tensor(f"v.blk.{i}.{name}.weight", np.ones(WIDTH, np.float32))
            writer.add_tensor(f"v.blk.{i}.{name}.bias", np.zeros(WIDTH, np.float32))
        writer.add_tensor(f"v.blk.{i}.ffn_up.weight", w(N_FF, WIDTH))
        writer.add_tensor(f"v.blk.{i}.ffn_up.bias", w(N_FF))
        writer.add_tensor(f"v.blk.{i}.ffn_down.weight", w(WIDTH, N_FF))
        writer.add_tensor(f"v.blk.{i}.ffn_down.bias", w(WIDTH))
    writer.add_tensor("mm.0.weight", w(N_FF, WIDTH))
    writer.add_tensor("mm.0.bias", w(N_FF))
    writer.add_tensor("mm.2.weight", w(N_EMBD_TEXT, N_FF, scale=0.5))
    writer.add_tensor("mm.2.bias", w(N_EMBD_TEXT))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def png(color: tuple[int, int, int], size: tuple[int, int] = (48, 40), pattern: int = 0) -> bytes:
    """A small PNG: ``color`` with a stripe pattern (``pattern`` picks the stripes' period), so
    two calls with different arguments give different pixels."""
    import io

    from PIL import Image

    img = Image.new("RGB", size, color)
    if pattern:
        for x in range(0, size[0], pattern):
            for y in range(size[1]):
                img.putpixel((x, y), (255 - color[0], 255 - color[1], 255 - color[2]))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
