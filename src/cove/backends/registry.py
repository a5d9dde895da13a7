"""The backend registry: remote OpenAI-compatible engines (vLLM, SGLang, llama-server, other
Cove workers) and the models they serve, kept in ``$COVE_HOME/backends.json``.

The file is JSON: ``{"backends": [{"name", "url", "models", "prefix", "weight",
"max_concurrency", "api_key_env"}]}``. A remote model is offered as ``prefix + upstream name``
(the prefix is empty by default, or e.g. ``"gpu/"`` where a local model has the same name);
backends that offer one name form a pool (:meth:`BackendRegistry.pools`).
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cove.errors import InvalidRequest

FILE_NAME = "backends.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_FILE_BYTES = 1 << 20  # a larger backends.json is refused (read and parsed on a request)
MAX_WEIGHT = 1000.0  # weight is in (0, MAX_WEIGHT]
MAX_CONCURRENCY = 100_000  # max_concurrency is in [0, MAX_CONCURRENCY]
MAX_MODELS = 1000  # models per backend
MAX_BACKENDS = 1000  # backends per file
MAX_OFFERED = 4096  # model names offered by all the file's backends together (each one is
# checked against the local models on a reload)


@dataclass(frozen=True)
class Backend:
    """One upstream. ``url`` is its base URL up to and including ``/v1`` (``http://h:8000/v1``;
    a URL without a path gets ``/v1``); ``models`` are upstream model names; ``weight``
    (> 0) scales its share in the affinity ring; ``max_concurrency`` caps requests in flight
    to it (0: no cap); ``api_key_env`` names the environment variable holding its bearer
    token (the key itself is never stored)."""

    name: str
    url: str
    models: tuple[str, ...]
    prefix: str = ""
    weight: float = 1.0
    max_concurrency: int = 0
    api_key_env: str | None = None

    @property
    def host(self) -> str:
        """The URL's host name or address (what the egress guard allows)."""
        return urlsplit(self.url).hostname or ""

    def offered(self) -> dict[str, str]:
        """Public name -> upstream name of every model this backend serves."""
        return {self.prefix + m: m for m in self.models}

    def api_key(self) -> str | None:
        """The bearer token from ``api_key_env`` (None when unset or empty)."""
        return (os.environ.get(self.api_key_env) or None) if self.api_key_env else None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["models"] = list(self.models)
        return d


def check_url(url: str) -> str:
    """``url`` normalised: an ``http``/``https`` URL with a host, no query or fragment, no
    trailing slash, ``/v1`` appended when it has no path.

    Raises:
        InvalidRequest: not a URL, another scheme, no host, credentials, a query or
            fragment, a bad port.
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError as e:  # e.g. "http://[::1" (an unclosed IPv6 literal)
        raise InvalidRequest(f"backend URL {url!r} is not a URL ({e})", param="url") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidRequest(f"backend URL {url!r} must start with http:// or https:// "
                             "(an OpenAI-compatible server, e.g. http://gpu1:8000/v1)", param="url")
    if not parts.hostname:
        raise InvalidRequest(f"backend URL {url!r} has no host", param="url")
    if parts.username or parts.password:
        raise InvalidRequest("backend URL must not carry credentials; use --api-key-env",
                             param="url")
    if parts.query or parts.fragment:
        raise InvalidRequest(f"backend URL {url!r} must not have a query or fragment",
                             param="url")
    try:
        port = parts.port
    except ValueError as e:
        raise InvalidRequest(f"backend URL {url!r}: {e}", param="url") from None
    if port == 0:
        raise InvalidRequest(f"backend URL {url!r}: port 0 is not a port a server listens on",
                             param="url")
    path = parts.path.rstrip("/") or "/v1"
    return f"{parts.scheme}://{parts.netloc}{path}"


def make_backend(name: str, url: str, models: list[str], *, prefix: str = "",
                 weight: float = 1.0, max_concurrency: int = 0,
                 api_key_env: str | None = None) -> Backend:
    """A checked :class:`Backend`. Types are checked too (the values may come from a
    hand-edited file): ``models`` a list of strings, ``weight`` a finite number in
    (0, :data:`MAX_WEIGHT`], ``max_concurrency`` an integer in [0, :data:`MAX_CONCURRENCY`].

    Raises:
        InvalidRequest: a bad name, URL (:func:`check_url`), model list, prefix, weight,
            concurrency or environment variable name.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidRequest(f"backend name {name!r}: use letters, digits, '.', '_', '-' "
                             "(up to 63)", param="name")
    if not isinstance(url, str):
        raise InvalidRequest(f"backend URL {url!r} must be a string", param="url")
    if not isinstance(models, (list, tuple)) or not all(isinstance(m, str) for m in models):
        raise InvalidRequest("models must be a list of model names", param="models")
    if len(models) > MAX_MODELS:
        raise InvalidRequest(f"a backend offers at most {MAX_MODELS} models", param="models")
    clean = [m.strip() for m in models if m.strip()]
    if not clean:
        raise InvalidRequest("a backend needs at least one model (--models a,b)", param="models")
    for m in clean:
        if any(c.isspace() for c in m) or len(m) > 200:
            raise InvalidRequest(f"model name {m!r} is not valid", param="models")
    if not isinstance(prefix, str) or (
            prefix and (not prefix.endswith("/") or any(c.isspace() for c in prefix)
                        or len(prefix) > 64)):
        raise InvalidRequest(f"prefix {prefix!r} must end with '/' (e.g. gpu/)", param="prefix")
    if (isinstance(weight, bool) or not isinstance(weight, (int, float))
            or not math.isfinite(weight) or not 0 < weight <= MAX_WEIGHT):
        raise InvalidRequest(f"weight must be a number above 0 and at most {MAX_WEIGHT:g}",
                             param="weight")
    if (isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int)
            or not 0 <= max_concurrency <= MAX_CONCURRENCY):
        raise InvalidRequest(f"max concurrency must be a whole number from 0 (no cap) to "
                             f"{MAX_CONCURRENCY}", param="max_concurrency")
    if api_key_env is not None and (not isinstance(api_key_env, str)
                                    or not _ENV.match(api_key_env)):
        raise InvalidRequest(f"{api_key_env!r} is not an environment variable name",
                             param="api_key_env")
    return Backend(name, check_url(url), tuple(dict.fromkeys(clean)), prefix, float(weight),
                   max_concurrency, api_key_env)


def read_file(path: Path) -> bytes | None:
    """The bytes of ``path``; None when it does not exist (``ENOENT``: no backends).

    Raises:
        InvalidRequest: it exists but cannot be used: unreadable (a symlink loop, no
            permission, ...), not a regular file (a directory, a FIFO), or larger than
            :data:`MAX_FILE_BYTES` (checked from ``fstat`` before reading, and again on the
            bytes read).
    """
    try:
        # O_NONBLOCK: opening a FIFO put in its place does not wait for a writer
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except OSError as e:
        why = os.strerror(e.errno) if e.errno else str(e)
        if e.errno == errno.ENOTDIR:  # a parent is not a directory: as good as missing
            return None
        raise InvalidRequest(f"{path} cannot be read ({why})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidRequest(f"{path} is not a regular file")
        if st.st_size > MAX_FILE_BYTES:
            raise InvalidRequest(f"{path} is {st.st_size} bytes, more than the "
                                 f"{MAX_FILE_BYTES} a backend file may have")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise InvalidRequest(f"{path} cannot be read ({e.strerror or e})") from None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise InvalidRequest(f"{path} is more than the {MAX_FILE_BYTES} bytes a backend file "
                             "may have")
    return data


def file_signature(path: Path) -> tuple[int, int, int] | None:
    """``(mtime in ns, size, inode)`` of ``path``, None when it does not exist: what changes
    when the file is edited or replaced (:meth:`BackendRegistry.save` renames a new file over
    it), read with one ``stat``. A path that exists but cannot be ``stat``-ed (a symlink
    loop, no permission) is ``(-1, -1, -errno)``, so its removal is seen too."""
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        return -1, -1, -(e.errno or 1)
    return st.st_mtime_ns, st.st_size, st.st_ino


@dataclass
class BackendRegistry:
    """The registered backends (read from and written to ``path``)."""

    path: Path
    backends: list[Backend] = field(default_factory=list)

    @classmethod
    def load(cls, home: Path) -> BackendRegistry:
        """Read ``home/backends.json`` (none: no backends).

        Raises:
            InvalidRequest: the file exists but cannot be read (:func:`read_file`: a symlink
                loop, no permission, a directory, over :data:`MAX_FILE_BYTES`), or is not
                valid JSON of the documented shape (too deeply nested JSON included).
        """
        path = home / FILE_NAME
        data = read_file(path)
        if data is None:
            return cls(path)
        try:
            raw = json.loads(data.decode("utf-8"))
            if not isinstance(raw, dict) or not isinstance(raw.get("backends"), list):
                raise ValueError('expected {"backends": [...]}')
            if len(raw["backends"]) > MAX_BACKENDS:
                raise ValueError(f"more than {MAX_BACKENDS} backends")
            backends = []
            for b in raw["backends"]:
                if not isinstance(b, dict):
                    raise ValueError("each backend must be an object")
                backends.append(make_backend(
                    b["name"], b["url"], b["models"], prefix=b.get("prefix") or "",
                    weight=b.get("weight", 1.0), max_concurrency=b.get("max_concurrency", 0),
                    api_key_env=b.get("api_key_env")))
            if sum(len(b.models) for b in backends) > MAX_OFFERED:
                raise ValueError(f"more than {MAX_OFFERED} models offered in all")
        except KeyError as e:
            raise InvalidRequest(f"{path} is not a valid backend file: missing field "
                                 f"{e}") from None
        except InvalidRequest as e:
            raise InvalidRequest(f"{path} is not a valid backend file: {e.message}") from None
        except RecursionError:
            raise InvalidRequest(f"{path} is not a valid backend file: nested too "
                                 "deeply") from None
        except MemoryError:
            raise InvalidRequest(f"{path} is not a valid backend file: too large to "
                                 "parse") from None
        except (ValueError, TypeError, AttributeError) as e:
            raise InvalidRequest(f"{path} is not a valid backend file: {e}") from None
        return cls(path, backends)

    def save(self) -> None:
        """Write the file atomically (a temporary file renamed over it)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"backends": [b.to_json() for b in self.backends]},
                                  indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)

    def add(self, backend: Backend) -> None:
        """Add (or replace, by name) a backend.

        Raises:
            InvalidRequest: its models would be offered under a name another backend uses
                with a different upstream name (a pool serves one upstream name).
        """
        rest = [b for b in self.backends if b.name != backend.name]
        for other in rest:
            for public, upstream in backend.offered().items():
                theirs = other.offered().get(public)
                if theirs is not None and theirs != upstream:
                    raise InvalidRequest(f"{public!r} already names {theirs!r} on {other.name}",
                                         param="prefix")
        self.backends = [*rest, backend]

    def remove(self, name: str) -> bool:
        """Remove the backend ``name``; False when there is none."""
        before = len(self.backends)
        self.backends = [b for b in self.backends if b.name != name]
        return len(self.backends) != before

    def pools(self) -> dict[str, list[tuple[Backend, str]]]:
        """Public model name -> the ``(backend, upstream name)`` pairs serving it."""
        out: dict[str, list[tuple[Backend, str]]] = {}
        for b in self.backends:
            for public, upstream in b.offered().items():
                out.setdefault(public, []).append((b, upstream))
        return out

    def hosts(self) -> dict[str, list[str]]:
        """Host -> names of the backends on it (for the egress guard and ``cove privacy``)."""
        out: dict[str, list[str]] = {}
        for b in self.backends:
            out.setdefault(b.host, []).append(b.name)
        return out
