"""The one error family of Cove.

The core raises these; each API renders them in its own shape (OpenAI's
``{"error": {"message", "type", "param", "code"}}`` for ``/v1/*``). Nothing here imports web code.
"""

from __future__ import annotations


class CoveError(Exception):
    """Base of every error Cove reports to a client.

    Attributes:
        status: HTTP status code the API should answer with (int, e.g. 400).
        type: OpenAI error ``type`` (``invalid_request_error``, ``not_found_error``, ...).
        code: machine-readable code (OpenAI ``code``), or None.
        param: the request field at fault (a path such as ``messages[0].role``), or None.
        headers: extra HTTP headers for the response (e.g. ``Retry-After``).
        expose: whether a server error's (5xx) message is written for the client and may be
            shown; otherwise the API shows only a reference to the logged error.
        reference: the log reference of a server error once it has been reported, or None.
    """

    status: int = 500
    type: str = "server_error"
    code: str | None = "internal_error"
    expose: bool = False
    reference: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}


class InvalidRequest(CoveError):
    """A client mistake in the request body or parameters (HTTP 400)."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class ContextLengthExceeded(InvalidRequest):
    """The prompt does not fit the model's context window (HTTP 400, OpenAI's code)."""

    code = "context_length_exceeded"

    def __init__(
        self, prompt_tokens: int, n_ctx: int, *, param: str = "messages", at_least: bool = False
    ) -> None:
        what = "messages" if param == "messages" else "prompt"
        count = f"at least {prompt_tokens}" if at_least else str(prompt_tokens)
        super().__init__(
            f"This model's maximum context length is {n_ctx} tokens. However, your {what} "
            f"resulted in {count} tokens, leaving no room for a completion. "
            f"Please reduce the length of the {what}.",
            param=param,
        )
        self.prompt_tokens = prompt_tokens
        self.n_ctx = n_ctx


class ModelNotFound(CoveError):
    """The requested model is not installed, or its name is not a valid model name (HTTP 404)."""

    status = 404
    type = "invalid_request_error"
    code = "model_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"The model {name!r} does not exist. Run `cove list` to see installed models.",
            param="model",
        )


class PayloadTooLarge(CoveError):
    """The request body exceeds the configured limit (HTTP 413)."""

    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class Overloaded(CoveError):
    """The generation queue is full (HTTP 503 with ``Retry-After``)."""

    status = 503
    type = "server_error"
    code = "overloaded"
    expose = True

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class RateLimited(CoveError):
    """Too many failed attempts (sign-ins, API keys): wait ``retry_after`` seconds (HTTP 429
    with ``Retry-After``; OpenAI's code ``rate_limit_exceeded``)."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class EngineFailure(CoveError):
    """The inference engine failed unexpectedly (HTTP 500)."""

    status = 500
    type = "server_error"
    code = "engine_error"


class Unauthorized(CoveError):
    """No valid credentials: missing or wrong API key, session or password (HTTP 401)."""

    status = 401
    type = "authentication_error"
    code = "unauthorized"


class Forbidden(CoveError):
    """Authenticated but not allowed: wrong role, CSRF check failed, sign-up closed (HTTP 403)."""

    status = 403
    type = "permission_error"
    code = "forbidden"


class NotFound(CoveError):
    """The resource does not exist or belongs to someone else; the two are indistinguishable
    on purpose (HTTP 404)."""

    status = 404
    type = "not_found_error"
    code = "not_found"


class Conflict(CoveError):
    """The request clashes with existing state, e.g. an e-mail already registered (HTTP 409)."""

    status = 409
    type = "invalid_request_error"
    code = "conflict"
class InvalidModelName(ModelNotFound):
    """A model reference that is not a valid name (path-like, odd characters); HTTP 404 like an
    unknown model, since such a name can never exist. Raised before any filesystem access."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(name)
        self.why = why
        self.message = f"The model {name!r} does not exist: {why}."


class ModelInUse(CoveError):
    """The model is loaded or generating and the operation needs it idle (HTTP 409)."""

    status = 409
    type = "invalid_request_error"
    code = "model_in_use"


class PullFailed(CoveError):
    """Downloading a model failed: the hub refused, the file is missing, or its checksum did not
    match (HTTP 502). A partial download is kept for resuming unless it was corrupt."""

    status = 502
    type = "server_error"
    code = "pull_failed"
    expose = True


class InsufficientMemory(CoveError):
    """A model does not fit the memory budget even with every idle model unloaded (HTTP 500)."""

    status = 500
    type = "server_error"
    code = "insufficient_memory"
    expose = True


class BackendError(CoveError):
    """A remote backend (an upstream OpenAI-compatible engine) failed: it sent garbage, an
    error, or broke its stream (HTTP 502). The message names the backend, never the prompt."""

    status = 502
    type = "server_error"
    code = "bad_gateway"
    expose = True


class BackendUnavailable(Overloaded):
    """No backend of a remote model can take the request now: all unreachable, their circuit
    breakers open, or at their concurrency cap (HTTP 503 with ``Retry-After``)."""

    code = "backend_unavailable"

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message, retry_after)


class BackendTimeout(CoveError):
    """A remote backend did not answer in time (HTTP 504)."""

    status = 504
    type = "server_error"
    code = "gateway_timeout"
    expose = True


class WebSearchFailed(CoveError):
    """The operator's web search engine (SearXNG, ``COVE_SEARXNG_URL``) did not answer in time,
    answered with an error, or answered something that is not its JSON results (HTTP 502); or
    web search is not configured (HTTP 400 via :class:`InvalidRequest` instead)."""

    status = 502
    type = "server_error"
    code = "web_search_failed"
    expose = True
