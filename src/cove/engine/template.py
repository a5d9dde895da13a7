"""Render a chat with the model's own Jinja chat template, in a sandbox.

The template comes from the GGUF key ``tokenizer.chat_template`` (the Hugging Face
``chat_template`` convention: variables ``messages``, ``add_generation_prompt``, ``bos_token``,
``eos_token``, and the helper ``raise_exception``). It runs in Jinja's
``ImmutableSandboxedEnvironment`` so a hostile template cannot reach Python internals.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from cove.errors import InvalidRequest

# ChatML: used when a model ships no template.
DEFAULT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _raise(message: str) -> None:
    raise InvalidRequest(f"chat template rejected the conversation: {message}", param="messages")


@lru_cache(maxsize=16)
def _compile(source: str) -> Any:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(source)


def render_chat(
    template: str | None,
    messages: list[dict[str, Any]],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
    **extra: Any,
) -> str:
    """Render ``messages`` (dicts with ``role`` and ``content`` strings) to the prompt text.

    Extra keyword arguments are passed to the template (e.g. ``enable_thinking``, ``tools``).

    Raises:
        InvalidRequest: the template raised (``raise_exception``) or failed to render.
    """
    try:
        tpl = _compile(template or DEFAULT_TEMPLATE)
        return str(
            tpl.render(
                messages=messages,
                add_generation_prompt=add_generation_prompt,
                bos_token=bos_token,
                eos_token=eos_token,
                **extra,
            )
        )
    except InvalidRequest:
        raise
    except TemplateError as e:
        raise InvalidRequest(f"chat template failed: {e}", param="messages") from e
