"""The llama.cpp engine: the only module that imports ``llama_cpp``.

Loads a GGUF file with llama-cpp-python in-process and yields tokens one at a time with the
sampling chain llama.cpp provides (top-k, top-p, min-p, temperature, penalties, seeded
distribution). Prefix reuse between consecutive requests comes from ``Llama.generate``, which
keeps the KV cells of the longest common token prefix.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

from cove.engine.types import ModelInfo, SamplingParams, Token
from cove.errors import EngineFailure, InvalidRequest


class LlamaEngine:
    """A GGUF model loaded through llama-cpp-python.

    Args:
        path: the ``.gguf`` file.
        name: the model's Cove name (e.g. ``smollm2:135m``), reported in ``info``.
        n_ctx: requested context window in tokens; capped at the model's trained length.
        n_threads: CPU threads for decoding and prompt processing.
        n_batch: prompt-processing batch size in tokens.

    Raises:
        EngineFailure: the file could not be loaded.
    """

    def __init__(
        self, path: Path, name: str, *, n_ctx: int = 4096, n_threads: int = 2, n_batch: int = 512
    ) -> None:
        import llama_cpp

        self._llama_cpp = llama_cpp
        try:
            llm = self._load(path, n_ctx, n_threads, n_batch)
            n_ctx_train = llm._model.n_ctx_train()
            if n_ctx_train and n_ctx > n_ctx_train:
                llm.close()
                llm = self._load(path, n_ctx_train, n_threads, n_batch)
        except (ValueError, RuntimeError, OSError) as e:
            raise EngineFailure(f"could not load model {name!r} from {path}: {e}") from e
        self._llm = llm
        md = dict(llm.metadata)
        model = llm._model
        self.info = ModelInfo(
            name=name,
            n_ctx=llm.n_ctx(),
            n_ctx_train=n_ctx_train,
            chat_template=md.get("tokenizer.chat_template"),
            bos_token=self._token_text(model.token_bos()),
            eos_token=self._token_text(model.token_eos()),
            add_bos=bool(model.add_bos_token()),
            metadata=md,
        )

    @staticmethod
    def _load(path: Path, n_ctx: int, n_threads: int, n_batch: int):  # type: ignore[no-untyped-def]
        from llama_cpp import Llama

        return Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_batch=min(n_batch, n_ctx),
            n_ubatch=min(n_batch, n_ctx),
            n_threads=n_threads,
            n_threads_batch=n_threads,
            verbose=False,
        )

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self._llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = True) -> list[int]:
        """Text to token ids (llama.cpp's tokenizer from the GGUF vocabulary)."""
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special))

    def tokens(
        self, prompt: list[int], params: SamplingParams, cancel: threading.Event
    ) -> Iterator[Token]:
        """Yield sampled tokens after ``prompt``; an end-of-generation token comes with
        ``is_end=True``. Returns when ``cancel`` is set or the consumer closes the iterator."""
        llm = self._llm
        seed = params.seed if params.seed is not None else random.randrange(2**31)
        llm.set_seed(seed & 0xFFFFFFFF)
        vocab = llm._model.vocab
        grammar = None
        if params.grammar is not None:
            from llama_cpp import LlamaGrammar

            try:
                grammar = LlamaGrammar.from_string(params.grammar, verbose=False)
            except ValueError as e:
                raise InvalidRequest(f"invalid grammar: {e}", param="grammar") from e
        gen = llm.generate(
            prompt,
            top_k=params.top_k,
            top_p=params.top_p,
            min_p=params.min_p,
            temp=params.temperature,
            repeat_penalty=params.repeat_penalty,
            presence_penalty=params.presence_penalty,
            frequency_penalty=params.frequency_penalty,
            grammar=grammar,
            reset=True,
        )
        try:
            for tok in gen:
                if cancel.is_set():
                    return
                if self._llama_cpp.llama_vocab_is_eog(vocab, tok):
                    yield Token(tok, b"", is_end=True)
                    return
                yield Token(tok, llm.detokenize([tok]))
        finally:
            gen.close()

    def close(self) -> None:
        """Free the model and its context."""
        self._llm.close()


class LlamaEmbedder:
    """A GGUF model loaded in embedding mode (mean pooling), for ``/api/embed``.

    Args:
        path: the ``.gguf`` file. name: the model's Cove name.
        n_ctx: longest input in tokens (also the batch size, as pooling needs whole inputs).
        n_threads: CPU threads.

    Raises:
        EngineFailure: the file could not be loaded.
    """

    def __init__(self, path: Path, name: str, *, n_ctx: int = 2048, n_threads: int = 2) -> None:
        import llama_cpp

        try:
            self._llm = llama_cpp.Llama(
                model_path=str(path), embedding=True, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx,
                n_threads=n_threads, n_threads_batch=n_threads,
                pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN, verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as e:
            raise EngineFailure(f"could not load model {name!r} for embeddings: {e}") from e
        self.name = name
        self.n_ctx = self._llm.n_ctx()

    def count(self, text: str) -> int:
        """Tokens in ``text`` (with BOS where the model wants it)."""
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=True))

    def embed(self, texts: list[str], truncate: bool = True) -> tuple[list[list[float]], int]:
        """L2-normalised mean-pooled embeddings of ``texts`` and the total input token count.
        Inputs over ``n_ctx`` tokens are cut to fit when ``truncate``.

        Raises:
            InvalidRequest: an input is too long and ``truncate`` is False.
        """
        if not truncate:
            for i, t in enumerate(texts):
                if self.count(t) > self.n_ctx:
                    raise InvalidRequest(f"input {i} is longer than the context window "
                                         f"({self.n_ctx} tokens)", param="input")
        vectors, count = self._llm.embed(texts, normalize=True, truncate=True, return_count=True)
        return [list(map(float, v)) for v in vectors], int(count)

    def close(self) -> None:
        """Free the model."""
        self._llm.close()


def json_grammar(schema: dict[str, object] | None) -> str:
    """A GBNF grammar for any JSON object (``schema`` None) or for a JSON schema, using
    llama-cpp-python's converter (a port of llama.cpp's ``json_schema_to_grammar``).

    Raises:
        InvalidRequest: the schema cannot be converted.
    """
    import json

    from llama_cpp import llama_grammar

    if schema is None:
        return llama_grammar.JSON_GBNF
    try:
        return llama_grammar.json_schema_to_gbnf(json.dumps(schema))
    except Exception as e:  # noqa: BLE001 - the converter raises assorted errors
        raise InvalidRequest(f"cannot use this JSON schema: {e}", param="format") from e
