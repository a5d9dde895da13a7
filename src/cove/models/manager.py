"""Loaded models: several at once within a memory budget, least-recently-used unloaded first,
each kept for its ``keep_alive`` after its last request (Ollama's scheduling rules).

The loaders are parameters, so this is tested with scripted engines. A model is in use while a
:class:`Lease` on it is held (from admission until its stream ends); only idle models (no lease,
no queued job) are ever unloaded. Expired models are unloaded by a small daemon thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from cove.config import Settings
from cove.engine.scheduler import Scheduler
from cove.engine.types import Engine
from cove.errors import InsufficientMemory, ModelInUse, Overloaded
from cove.models.registry import ModelEntry

log = logging.getLogger(__name__)

Kind = Literal["chat", "embed"]


class Embedder(Protocol):
    """A model loaded for embeddings (see :class:`cove.engine.llama_embed.LlamaEmbedder`).

    ``n_ctx``: most tokens of one input, and of one batch; ``n_seq_max``: most inputs in one
    batch; ``n_embd``: vector size; ``n_vocab``: token ids are ``0 .. n_vocab - 1``.
    """

    n_ctx: int
    n_seq_max: int
    n_embd: int
    n_vocab: int

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text``, with the special tokens the model's inputs carry."""
        ...

    def embed_batch(self, inputs: list[list[int]]) -> Any:
        """One pooled vector per input (token-id lists, non-empty, fitting ``n_ctx`` and
        ``n_seq_max`` together): an array-like of shape ``(len(inputs), n_embd)``."""
        ...

    def close(self) -> None: ...


Loader = Callable[[ModelEntry, Settings], Engine]
EmbedLoader = Callable[[ModelEntry, Settings], Embedder]


def physical_memory() -> int:
    """Total physical memory in bytes (0 when unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def kv_bytes_per_token(entry: ModelEntry) -> int:
    """Bytes of f16 KV cache one token takes: layers x KV heads x (key + value head dims) x 2
    bytes (GGUF keys ``<arch>.block_count``, ``.attention.head_count_kv`` — a number or one
    per layer —, ``.attention.key_length`` / ``.value_length``, else the embedding length /
    ``.attention.head_count``); 0 when the metadata lacks them."""
    meta = entry.meta()
    kv = meta.get("kv") or {}
    arch = meta.get("architecture")
    try:
        layers = int(meta["block_count"])
        heads = int(meta["head_count"])
        kv_heads = meta.get("head_count_kv") or heads
        k_len = int(kv.get(f"{arch}.attention.key_length") or
                    int(meta["embedding_length"]) // heads)
        v_len = int(kv.get(f"{arch}.attention.value_length") or k_len)
        total_kv_heads = (sum(int(h) for h in kv_heads) if isinstance(kv_heads, list)
                          else layers * int(kv_heads))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return 0
    return total_kv_heads * (k_len + v_len) * 2


def estimate_bytes(entry: ModelEntry, n_ctx: int) -> int:
    """Memory a model needs: its weights file (and vision projector) plus an f16 KV cache for
    ``n_ctx`` tokens (:func:`kv_bytes_per_token`)."""
    projector = 0
    if entry.projector is not None:
        try:
            projector = entry.projector.stat().st_size
        except OSError:
            projector = 0
    return entry.size + projector + n_ctx * kv_bytes_per_token(entry)


AUTO_MIN_CTX = 4096  # the window "auto" never goes below (unless the model's is shorter)


def auto_context(entry: ModelEntry, settings: Settings, budget: int) -> int:
    """The per-slot window ``COVE_N_CTX=auto`` gives a chat model: its trained length, as
    long as the model (weights, ``n_parallel`` windows of KV cache and the prompt cache)
    takes at most half of ``budget`` bytes, so another model still fits beside it; else the
    longest window (a multiple of 256) that does, but never below 4096 tokens (or the trained
    length when shorter). 4096 when the trained length is unknown."""
    trained = int(entry.meta().get("context_length") or 0)
    if trained <= 0:
        return AUTO_MIN_CTX
    floor = min(AUTO_MIN_CTX, trained)
    per_token = kv_bytes_per_token(entry) * settings.n_parallel
    room = budget // 2 - entry.size - (settings.prompt_cache_mb << 20)
    fits = room // per_token // 256 * 256 if per_token else trained
    return max(floor, min(trained, fits))


def memory_budget(settings: Settings) -> int:
    """Bytes loaded models may use: ``memory_budget``, else 3/4 of physical memory (else
    unlimited when that is unknown)."""
    return settings.memory_budget or physical_memory() * 3 // 4 or 1 << 62


def context_window(entry: ModelEntry, settings: Settings, kind: Kind = "chat") -> int:
    """The context window a model is loaded with when a request asks for none: ``n_ctx``,
    or for ``auto`` :func:`auto_context` (a chat model) or the trained length up to 8192
    (an embedding model)."""
    if settings.n_ctx != "auto":
        return settings.n_ctx
    if kind == "embed":
        return min(int(entry.meta().get("context_length") or AUTO_MIN_CTX), 8192)
    return auto_context(entry, settings, memory_budget(settings))


@dataclass(eq=False)
class Loaded:
    """A loaded model. ``engine`` is an :class:`Engine` (kind ``chat``, with its ``scheduler``)
    or an :class:`Embedder` (kind ``embed``). Times are ``time.monotonic()`` seconds;
    ``expires_at`` None while in use or when kept forever."""

    entry: ModelEntry
    kind: Kind
    engine: Any
    scheduler: Scheduler | None
    n_ctx: int
    size: int
    active: int = 0
    last_used: float = 0.0
    expires_at: float | None = None
    forever: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def busy(self) -> bool:
        return self.active > 0 or (self.scheduler is not None and self.scheduler.pending > 0)

    def expires_wall(self) -> float | None:
        """``expires_at`` as a Unix time (None: in use or forever)."""
        if self.expires_at is None:
            return None
        return time.time() + (self.expires_at - time.monotonic())


class Lease:
    """A hold on a loaded model; :meth:`release` (idempotent) starts its keep-alive timer."""

    def __init__(self, manager: ModelManager, loaded: Loaded) -> None:
        self.manager = manager
        self.loaded = loaded
        self._released = False

    def release(self, keep_alive: float | None = None) -> None:
        """Done with the model; keep it ``keep_alive`` seconds (None: the default, < 0:
        forever, 0: unload as soon as it is idle)."""
        if not self._released:
            self._released = True
            self.manager._release(self.loaded, keep_alive)


class ModelManager:
    """Loads models on demand and unloads them by budget, LRU order and keep-alive.

    Args:
        settings: ``keep_alive`` (default seconds), ``max_loaded_models``, ``memory_budget``
            (bytes, 0 = 3/4 of physical memory), ``n_ctx`` (default context), ``max_queue``.
        loader: builds a chat :class:`Engine` for an entry (the settings passed carry the
            context size to use in ``n_ctx``).
        embed_loader: builds an :class:`Embedder`, or None when embeddings are unsupported.
        wait: seconds a load waits for busy models to become idle before giving up (503).
    """

    def __init__(self, settings: Settings, loader: Loader, embed_loader: EmbedLoader | None = None,
                 *, wait: float = 300.0) -> None:
        self.settings = settings
        self._loader = loader
        self._embed_loader = embed_loader
        self._wait = wait
        self._models: dict[tuple[str, Kind], Loaded] = {}
        self._lock = threading.Lock()  # guards _models and Loaded counters
        self._load_lock = threading.Lock()  # one load at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None
        self.budget = memory_budget(settings)

    # -- public -----------------------------------------------------------------------------

    async def acquire(self, entry: ModelEntry, *, kind: Kind = "chat",
                      num_ctx: int | None = None) -> Lease:
        """Load ``entry`` if needed (reloading when an idle model has another ``num_ctx``)
        and hold it.

        Raises:
            InsufficientMemory: it cannot fit even alone. Overloaded: busy models did not free
            room in time. EngineFailure: the load failed. InvalidRequest: no embedding support.
        """
        loaded = self._fast(entry, kind, num_ctx)
        if loaded is None:
            loaded = await asyncio.to_thread(self._acquire_slow, entry, kind, num_ctx)
        return Lease(self, loaded)

    def loaded(self) -> list[Loaded]:
        """Loaded models, most recently used first."""
        with self._lock:
            return sorted(self._models.values(), key=lambda m: -m.last_used)

    def unload(self, name: str, *, force: bool = False) -> bool:
        """Unload every instance of the model ``name`` now; False if none was loaded.

        Raises:
            ModelInUse: it is generating and ``force`` is False.
        """
        with self._lock:
            found = [m for (n, _), m in self._models.items() if n == name]
            if not force and any(m.busy for m in found):
                raise ModelInUse(f"{name} is busy answering a request; try again when it is done")
            for m in found:
                self._drop(m)
        for m in found:
            self._close(m)
        return bool(found)

    def close(self) -> None:
        """Stop the reaper and free every model."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            models = list(self._models.values())
            self._models.clear()
        for m in models:
            self._close(m)

    # -- internals --------------------------------------------------------------------------

    def _settings_for(self, n_ctx: int) -> Settings:
        return self.settings.model_copy(update={"n_ctx": n_ctx})

    def _fast(self, entry: ModelEntry, kind: Kind, num_ctx: int | None) -> Loaded | None:
        with self._lock:
            m = self._models.get((entry.name, kind))
            if m is None or m.entry != entry:
                return None
            if num_ctx is not None and num_ctx != m.n_ctx and not m.busy:
                return None  # reload with the requested context
            m.active += 1
            m.expires_at = None
            m.last_used = time.monotonic()
            return m

    def _acquire_slow(self, entry: ModelEntry, kind: Kind, num_ctx: int | None) -> Loaded:
        with self._load_lock:
            again = self._fast(entry, kind, num_ctx)
            if again is not None:
                return again
            with self._lock:
                stale = self._models.get((entry.name, kind))
                if stale is not None and stale.busy:  # in use: share it rather than reload
                    stale.active += 1
                    stale.expires_at = None
                    stale.last_used = time.monotonic()
                    return stale
                if stale is not None:
                    self._drop(stale)
            if stale is not None:
                self._close(stale)
            n_ctx = num_ctx or context_window(entry, self.settings, kind)
            if kind == "embed":
                need = estimate_bytes(entry, n_ctx)
            else:  # a KV stream of n_ctx cells per slot, and the host prompt cache's budget
                need = (estimate_bytes(entry, n_ctx * self.settings.n_parallel)
                        + (self.settings.prompt_cache_mb << 20))
            self._make_room(entry.name, need)
            settings = self._settings_for(n_ctx)
            if kind == "embed":
                if self._embed_loader is None:
                    from cove.errors import InvalidRequest

                    raise InvalidRequest("embeddings are not available", param="model")
                engine: Any = self._embed_loader(entry, settings)
                scheduler = None
            else:
                engine = self._loader(entry, settings)
                scheduler = Scheduler(engine, self.settings.max_queue,
                                      prompt_cache_bytes=self.settings.prompt_cache_mb << 20,
                                      queue_timeout=self.settings.queue_timeout)
            loaded = Loaded(entry, kind, engine, scheduler, n_ctx, need, active=1,
                            last_used=time.monotonic())
            with self._lock:
                self._models[(entry.name, kind)] = loaded
            self._start_reaper()
            log.info("loaded %s (%s, n_ctx %d, ~%d MB)", entry.name, kind, n_ctx, need >> 20)
            return loaded

    def _make_room(self, name: str, need: int) -> None:
        deadline = time.monotonic() + self._wait
        while True:
            with self._lock:
                models = list(self._models.values())
                used = sum(m.size for m in models)
                if len(models) < self.settings.max_loaded_models and used + need <= self.budget:
                    return
                if not models:
                    raise InsufficientMemory(
                        f"{name} needs about {need / 1e9:.1f} GB, more than the memory budget "
                        f"of {self.budget / 1e9:.1f} GB (COVE_MEMORY_BUDGET)")
                idle = sorted((m for m in models if not m.busy), key=lambda m: m.last_used)
                victim = idle[0] if idle else None
                if victim is not None:
                    self._drop(victim)
            if victim is not None:
                log.info("unloading %s to make room for %s", victim.entry.name, name)
                self._close(victim)
                continue
            if time.monotonic() > deadline:
                raise Overloaded(f"no room to load {name}: every loaded model is busy", 5)
            time.sleep(0.05)

    def _release(self, m: Loaded, keep_alive: float | None) -> None:
        if keep_alive is None:
            keep_alive = self.settings.keep_alive
        with self._lock:
            m.active = max(0, m.active - 1)
            m.last_used = time.monotonic()
            if m.active == 0:
                m.forever = keep_alive < 0
                m.expires_at = None if m.forever else m.last_used + keep_alive
        self._wake.set()

    def _drop(self, m: Loaded) -> None:
        """Forget ``m`` (caller holds ``_lock``); close it after releasing the lock."""
        if self._models.get((m.entry.name, m.kind)) is m:
            del self._models[(m.entry.name, m.kind)]

    @staticmethod
    def _close(m: Loaded) -> None:
        if m.scheduler is not None and not m.scheduler.close():
            # the worker is still in a decode step: freeing the model under it would crash the
            # process; leave it to the worker (a daemon thread) and the process's end
            log.warning("%s: generation did not stop in time; its memory is not freed",
                        m.entry.name)
            return
        with m.lock:
            m.engine.close()

    def _start_reaper(self) -> None:
        if self._reaper is None or not self._reaper.is_alive():
            self._reaper = threading.Thread(target=self._reap, name="cove-reaper", daemon=True)
            self._reaper.start()

    def _reap(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            now = time.monotonic()
            with self._lock:
                expired = [m for m in self._models.values()
                           if m.expires_at is not None and now >= m.expires_at and not m.busy]
                for m in expired:
                    self._drop(m)
            for m in expired:
                log.info("keep-alive expired: unloading %s", m.entry.name)
                self._close(m)
