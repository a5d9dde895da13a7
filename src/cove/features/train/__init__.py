"""Training recipes (DeepSeek-R1's): LoRA supervised fine-tuning, GRPO with rule-based rewards,
and reasoning distillation from a teacher model, ending in a model Cove serves.

Nothing in Cove's core imports this package; the CLI registers ``cove train``. Training runs in
a process of its own (:mod:`cove.features.train.worker`), never in the server's. torch and the
Hugging Face libraries are the optional extra ``cove[train]``, imported only in that process.
"""

RECIPES = ("sft", "grpo")
