"""FastAPI dependencies for who is calling.

- Web app (``/web/*``): a session cookie (``cove_session``: HttpOnly, SameSite=Lax, Secure when
  the request came over https). State-changing requests (POST, PUT, PATCH, DELETE) must also carry
  the session's CSRF token in ``X-CSRF-Token`` and, if the browser sends ``Origin``, come from
  this server's own origin.
- API clients: ``Authorization: Bearer <API key>`` (or, for ``/v1`` and ``/api``, Anthropic's
  ``x-api-key``); such requests need no CSRF token (browsers never add these headers by
  themselves).
- ``/v1/*`` (:func:`api_access`): open while the server is bound to loopback and no account
  exists; otherwise a valid API key (or web session) is required.
- Unknown API keys count against the client address; past ``COVE_SIGNIN_ADDRESS_FAILURES`` its
  unknown keys get 429 (valid keys still pass), see :mod:`cove.auth.throttle`.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from cove.auth import repo
from cove.auth.throttle import SignInGuard
from cove.config import Settings
from cove.errors import Forbidden, Unauthorized
from cove.store.db import Database
from cove.store.tables import User

SESSION_COOKIE = "cove_session"
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def get_db(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_guard(request: Request) -> SignInGuard:
    """The server's sign-in and API-key limits (:class:`~cove.auth.throttle.SignInGuard`)."""
    return request.app.state.signin_guard  # type: ignore[no-any-return]


def client_address(request: Request) -> str:
    """The client's address as the server sees it (behind a reverse proxy, the proxy must pass
    the client's address on: uvicorn's ``--forwarded-allow-ips``)."""
    return request.client.host if request.client else "unknown"


def key_owner(request: Request, s: Session, key: str) -> User | None:
    """The enabled owner of API ``key``; an unknown key counts against the client address.
    A valid key always passes: keys are 256-bit random, so the back-off is not what stops
    guessing, and all local programs share 127.0.0.1 — one misconfigured client must not lock
    out the others.

    Raises:
        RateLimited: the key is unknown and the address sent too many unknown keys (it must
            wait; this one is not counted).
    """
    user = repo.user_for_key(s, key)
    if user is None:
        guard, address = get_guard(request), client_address(request)
        guard.check_key(address)
        guard.key_failed(address)
    return user


def db_session(request: Request) -> Iterator[Session]:
    """A database session for one request; committed when the route returns without error."""
    with get_db(request).session() as s:
        yield s


DbDep = Annotated[Session, Depends(db_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
GuardDep = Annotated[SignInGuard, Depends(get_guard)]


@dataclass
class Caller:
    """Who made the request: ``user`` (None for an anonymous caller) and how (``via``:
    ``session``, ``key`` or ``none``); ``csrf`` is the session's CSRF token."""

    user: User | None
    via: str
    csrf: str | None = None
    session_token: str | None = None


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def api_key(request: Request) -> str | None:
    """The API key of an API request: ``Authorization: Bearer <key>``, else ``x-api-key``
    (Anthropic's header; browsers never add either by themselves)."""
    return _bearer(request) or request.headers.get("x-api-key", "").strip() or None


def check_origin(request: Request) -> None:
    """Refuse a state-changing browser request whose ``Origin`` is another site.

    Raises:
        Forbidden: ``Origin`` present and not this server's scheme://host.
    """
    origin = request.headers.get("origin")
    if origin is None or request.method not in UNSAFE_METHODS:
        return
    host = request.headers.get("host", "")
    if origin == "null" or urlsplit(origin).netloc.lower() != host.lower():
        raise Forbidden("cross-site request refused")


def identify(request: Request, s: Session) -> Caller:
    """The caller of ``request`` (API key first, then session cookie).

    Raises:
        Unauthorized: a Bearer key was sent but is not valid.
        RateLimited: too many invalid keys from this address.
        Forbidden: a cookie-authenticated state-changing request without the right CSRF token.
    """
    key = _bearer(request)
    if key is not None:
        user = key_owner(request, s, key)
        if user is None:
            raise Unauthorized("invalid API key", code="invalid_api_key")
        return Caller(user, "key")
    token = request.cookies.get(SESSION_COOKIE)
    found = repo.session_for(s, token) if token else None
    if found is None:
        return Caller(None, "none")
    user, row = found
    if request.method in UNSAFE_METHODS:
        check_origin(request)
        sent = request.headers.get("x-csrf-token", "")
        if not hmac.compare_digest(sent.encode(), row.csrf.encode()):
            raise Forbidden("missing or wrong CSRF token (reload the page)", code="csrf_failed")
    return Caller(user, "session", row.csrf, token)


def caller(request: Request) -> Caller:
    """The caller, identified in a short session of its own (so that a streaming route holds
    no database transaction open). The returned ``User`` is detached: routes use its id."""
    with get_db(request).session() as s:
        return identify(request, s)


def current_user(c: Annotated[Caller, Depends(caller)]) -> User:
    """The signed-in user. Raises Unauthorized when nobody is."""
    if c.user is None:
        raise Unauthorized("sign in first")
    return c.user


def current_admin(user: Annotated[User, Depends(current_user)]) -> User:
    """The signed-in admin. Raises Forbidden for other users."""
    if user.role != "admin":
        raise Forbidden("only administrators may do this")
    return user


CallerDep = Annotated[Caller, Depends(caller)]
UserDep = Annotated[User, Depends(current_user)]
AdminDep = Annotated[User, Depends(current_admin)]


def api_access(request: Request) -> None:
    """Gate for ``/v1/*``: open on loopback while no account exists, otherwise a valid API key
    (or a signed-in web session) is required.

    Raises:
        Unauthorized: no valid credentials where they are required.
        RateLimited: too many invalid keys from this address.
    """
    settings = get_settings(request)
    with get_db(request).session() as s:
        if settings.on_loopback and not repo.has_users(s):
            return
        key = api_key(request)
        user = key_owner(request, s, key) if key is not None else None
        if user is not None:
            request.state.user_id = user.id  # the scheduler's fair shares count per user
            return
        token = request.cookies.get(SESSION_COOKIE)
        found = repo.session_for(s, token) if key is None and token else None
        if found is not None:
            if request.method in UNSAFE_METHODS:
                check_origin(request)
            request.state.user_id = found[0].id
            return
    if key is not None:  # a key was sent: say it is the key that is wrong
        raise Unauthorized(
            "the API key is not valid (revoked, mistyped, or from another Cove): create one in "
            "the web app under Settings -> API keys",
            code="invalid_api_key",
        )
    raise Unauthorized(
        "this server needs an API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>' "
        "(create keys in the web app under Settings -> API keys)",
        code="invalid_api_key",
    )


def api_user_id(request: Request) -> int | None:
    """The account a ``/v1`` or ``/api`` request acts for, as :func:`api_access` found it (the
    owner of its API key, else of its web session). None when the server is open (loopback,
    no account yet): Cove calls data made then "local"."""
    user_id = getattr(request.state, "user_id", None)
    return user_id if isinstance(user_id, int) else None


ApiUserDep = Annotated[int | None, Depends(api_user_id)]


def api_or_guest(request: Request) -> None:
    """Gate for features guests may use (brainstorms, the arena): as :func:`api_access`, but
    while guest use is on (``COVE_GUEST``) a request that sends no API key passes as a guest
    (no ``request.state.user_id``: nothing of it is kept). A state-changing guest request
    from a browser must come from this server's own origin.

    Raises:
        Unauthorized: an invalid API key, or no credentials while guests are not allowed.
        Forbidden: a cross-site guest request. RateLimited: as :func:`api_access`.
    """
    try:
        api_access(request)
    except Unauthorized:
        if api_key(request) is not None or not get_settings(request).guest_enabled:
            raise
        check_origin(request)
