"""Model references, parsed and validated in one place so a name can never become a path.

Accepted forms (case-insensitive; stored lower-case):

- ``name[:tag]`` — Ollama's convention: lower-case letters, digits, ``.``, ``_`` and ``-``, each
  part starting with a letter or digit; ``tag`` defaults to ``latest``.
- ``namespace/name[:tag]`` — a name under one namespace (as in Ollama's ``user/model``).
- ``hf.co/<owner>/<repo>[:<quant>]`` (also ``huggingface.co/...``) — a GGUF repository on Hugging
  Face; the tag names the quantization to pick (``Q4_K_M`` by default). The repository id keeps
  its original case for the hub, the stored name is lower-case.

Every component is checked against a strict character set before anything touches the
filesystem: slashes beyond the forms above, backslashes, ``..``, absolute paths, ``~``, control
characters and empty parts are rejected with :class:`~cove.errors.InvalidModelName`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cove.errors import InvalidModelName, InvalidRequest

_PART = r"[a-z0-9][a-z0-9._-]{0,79}"
_PART_RE = re.compile(rf"^{_PART}$")
_HF_PART_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_HF_HOSTS = ("hf.co", "huggingface.co")
DEFAULT_TAG = "latest"
DEFAULT_QUANT = "Q4_K_M"


@dataclass(frozen=True)
class ModelRef:
    """A validated model reference.

    Attributes:
        name: lower-case name without tag: ``qwen2.5``, ``user/model`` or ``hf.co/owner/repo``.
        tag: lower-case tag (``latest`` when none was given).
        repo_id: for Hugging Face references, ``owner/repo`` in its original case; else None.
        quant: for Hugging Face references, the quantization the tag asks for in its original
            case (``Q4_K_M`` when the tag is ``latest``); else None.
    """

    name: str
    tag: str
    repo_id: str | None = None
    quant: str | None = None

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}"

    @property
    def parts(self) -> tuple[str, ...]:
        """The name's path components (each validated), for laying out manifests."""
        return tuple(self.name.split("/"))

    @property
    def is_hf(self) -> bool:
        """Whether this names a Hugging Face repository."""
        return self.repo_id is not None


def _bad(ref: object, why: str) -> InvalidModelName:
    return InvalidModelName(str(ref) if isinstance(ref, str) else repr(ref), why)


def parse_ref(ref: str) -> ModelRef:
    """Parse and validate a model reference (see the module docstring for the forms).

    Raises:
        InvalidModelName: empty, path-like (``../x``, ``/etc/x``, ``a\\b``, ``~``), odd
            characters, too many parts, or a bad tag.
    """
    if not isinstance(ref, str):
        raise _bad(ref, "a model name must be a string")
    text = ref.strip()
    if not text:
        raise _bad(ref, "the name is empty")
    if ".." in text or "\\" in text or text.startswith(("/", "~", ".")):
        raise _bad(ref, "a model name cannot be a path")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise _bad(ref, "control characters are not allowed")
    if text.count(":") > 1:
        raise _bad(ref, "use name:tag with one ':'")
    base, _, tag = text.partition(":")
    if _ and not tag:
        raise _bad(ref, "the tag after ':' is empty")
    parts = base.split("/")
    if parts[0].lower() in _HF_HOSTS:
        return _parse_hf(ref, parts, tag)
    if len(parts) > 2:
        raise _bad(ref, "use name[:tag], namespace/name[:tag] or hf.co/<owner>/<repo>[:quant]")
    for p in parts:
        if not _PART_RE.match(p.lower()):
            raise _bad(ref, f"{p!r} is not a valid name part (letters, digits, '.', '_', '-')")
        if p.lower().endswith(".json"):  # would collide with a manifest file of the store
            raise _bad(ref, f"{p!r}: a name part cannot end in '.json'")
    tag_l = (tag or DEFAULT_TAG).lower()
    if not _PART_RE.match(tag_l):
        raise _bad(ref, f"{tag!r} is not a valid tag")
    return ModelRef("/".join(p.lower() for p in parts), tag_l)


def _parse_hf(ref: str, parts: list[str], tag: str) -> ModelRef:
    if len(parts) != 3:
        raise _bad(ref, "a Hugging Face reference is hf.co/<owner>/<repo>[:quant]")
    owner, repo = parts[1], parts[2]
    for p in (owner, repo):
        if not _HF_PART_RE.match(p):
            raise _bad(ref, f"{p!r} is not a valid Hugging Face owner or repository name")
    tag_l = (tag or DEFAULT_TAG).lower()
    if not _PART_RE.match(tag_l):
        raise _bad(ref, f"{tag!r} is not a valid quantization tag")
    quant = DEFAULT_QUANT if tag_l == DEFAULT_TAG else tag
    return ModelRef(f"hf.co/{owner.lower()}/{repo.lower()}", tag_l, f"{owner}/{repo}", quant)


def parse_new_ref(ref: str, param: str = "model") -> ModelRef:
    """:func:`parse_ref` for a name about to be given to a model (``cove create``/``cp``/
    ``import``, ``/api/create``, ``/api/copy``): a bad name cannot "not exist", so it is a 400
    saying the name is not valid, naming ``param``.

    Raises:
        InvalidRequest: the reasons of :func:`parse_ref`.
    """
    try:
        return parse_ref(ref)
    except InvalidModelName as e:
        raise InvalidRequest(f"{ref!r} is not a valid model name: {e.why}", param=param) from e
