"""``/web`` routes for accounts: session, sign-up, sign-in/out, API keys, admin, data rights
(export, delete account). Thin: the work is in :mod:`cove.auth.repo` and :mod:`cove.chats.repo`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, StrictBool

from cove import __version__
from cove.auth import repo
from cove.auth.deps import (
    SESSION_COOKIE,
    AdminDep,
    CallerDep,
    DbDep,
    GuardDep,
    SettingsDep,
    UserDep,
    check_origin,
    client_address,
    get_db,
)
from cove.auth.secrets import verify_password
from cove.auth.throttle import SignInGuard
from cove.chats.repo import export_user
from cove.errors import Conflict, Forbidden, InvalidRequest, Unauthorized
from cove.store.tables import ApiKey, User

router = APIRouter(prefix="/web")
DEVICE_COOKIE = "cove_device"


class Credentials(BaseModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=4096)


class SignUp(Credentials):
    invite: str | None = Field(None, max_length=200)


class NewUser(Credentials):
    role: str = "user"


class UserChange(BaseModel):
    role: str | None = None
    disabled: StrictBool | None = None


class KeyName(BaseModel):
    name: str = Field("", max_length=100)


class Password(BaseModel):
    password: str = Field(max_length=4096)


def user_dict(u: User) -> dict[str, Any]:
    """The public view of an account (never the password hash)."""
    return {"id": u.id, "email": u.email, "role": u.role, "disabled": u.disabled,
            "created_at": u.created_at.isoformat(timespec="seconds") + "Z"}


def key_dict(k: ApiKey) -> dict[str, Any]:
    return {"id": k.id, "name": k.name, "prefix": k.prefix,
            "created_at": k.created_at.isoformat(timespec="seconds") + "Z",
            "last_used_at": k.last_used_at.isoformat(timespec="seconds") + "Z"
            if k.last_used_at else None}


def _sign_in(request: Request, response: Response, s: Any, user: User, days: int,
             device: str) -> dict[str, Any]:
    new = repo.create_session(s, user, days)
    secure = request.url.scheme == "https"
    response.set_cookie(SESSION_COOKIE, new.token, max_age=days * 86400, httponly=True,
                        samesite="lax", secure=secure, path="/")
    # marks this browser as one that knew the password: failed sign-ins from elsewhere do not
    # hold it up (see cove.auth.throttle); valid until the server restarts
    response.set_cookie(DEVICE_COOKIE, device, max_age=365 * 86400, httponly=True,
                        samesite="strict", secure=secure, path="/web")
    return {"user": user_dict(user), "csrf": new.csrf}


def check_password(guard: SignInGuard, request: Request, email: str,
                   check: Callable[[], User]) -> User:
    """Run ``check`` (a password verification for ``email``, raising Unauthorized when it
    fails) under the sign-in back-off of the account and the client address.

    Raises:
        RateLimited: the account or the address must wait first.
        Unauthorized: from ``check``.
    """
    address = client_address(request)
    guard.begin_signin(email, address, request.cookies.get(DEVICE_COOKIE))
    user = check()  # a failure stays counted
    guard.signed_in(email, address)
    return user


@router.get("/session")
def session(c: CallerDep, s: DbDep, settings: SettingsDep) -> dict[str, Any]:
    """Who is signed in, the CSRF token for this session and the server's options."""
    return {
        "user": user_dict(c.user) if c.user else None,
        "csrf": c.csrf,
        "guest": settings.guest_enabled,
        "signup": settings.signup,
        "first_account": not repo.has_users(s),
        "version": __version__,
    }


@router.post("/signup")
def signup(body: SignUp, request: Request, response: Response, s: DbDep,
           settings: SettingsDep, guard: GuardDep) -> dict[str, Any]:
    """Create an account and sign in. An e-mail already registered is a 409 saying so (open
    sign-up cannot hide it: the person needs to know to sign in instead); each such answer
    counts as a failed sign-in of the client address, so addresses cannot be tried in bulk."""
    check_origin(request)
    address = client_address(request)
    guard.check_address(address)
    try:
        user = repo.sign_up(s, settings.signup, body.email, body.password, body.invite)
    except Conflict:
        guard.failed_signup(address)
        raise
    return _sign_in(request, response, s, user, settings.session_days,
                    guard.device_token(user.email))


@router.post("/login")
def login(body: Credentials, request: Request, response: Response, s: DbDep,
          settings: SettingsDep, guard: GuardDep) -> dict[str, Any]:
    """Sign in. A wrong password, an unknown e-mail and a disabled account get the same 401 in
    the same time; failures make the account and the address wait (429, Retry-After)."""
    check_origin(request)
    user = check_password(guard, request, body.email,
                          lambda: repo.authenticate(s, body.email, body.password))
    return _sign_in(request, response, s, user, settings.session_days,
                    guard.device_token(user.email))


@router.post("/logout")
def logout(c: CallerDep, response: Response, s: DbDep) -> dict[str, Any]:
    if c.session_token:
        repo.end_session(s, c.session_token)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {"ok": True}


@router.get("/keys")
def list_keys(user: UserDep, s: DbDep) -> dict[str, Any]:
    return {"data": [key_dict(k) for k in repo.list_api_keys(s, user)]}


@router.post("/keys")
def create_key(body: KeyName, user: UserDep, s: DbDep) -> dict[str, Any]:
    """A new API key; ``key`` is in this response only (it is stored hashed)."""
    row, key = repo.create_api_key(s, user, body.name)
    return {**key_dict(row), "key": key}


@router.delete("/keys/{key_id}")
def delete_key(key_id: int, user: UserDep, s: DbDep) -> dict[str, Any]:
    repo.delete_api_key(s, user, key_id)
    return {"ok": True}


def register_export(app: Any, name: str, part: Callable[[Any, int], Any]) -> None:
    """Make the export carry ``name: part(session, user_id)`` (a feature's own data)."""
    if not hasattr(app.state, "export_parts"):
        app.state.export_parts = {}
    app.state.export_parts[name] = part


@router.get("/export")
def export(request: Request, user: UserDep, s: DbDep) -> Response:
    """All of the user's data as one JSON file (download), with each feature's part."""
    data = export_user(s, user)
    for name, part in getattr(request.app.state, "export_parts", {}).items():
        data[name] = part(s, user.id)
    body = json.dumps(data, ensure_ascii=False, indent=2)
    return Response(body, media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="cove-export-{user.id}.json"',
        "Cache-Control": "no-store"})


@router.delete("/account")
def delete_account(body: Password, request: Request, response: Response, user: UserDep,
                   s: DbDep, guard: GuardDep) -> dict[str, Any]:
    """Hard-delete the signed-in account and everything of it (password required; wrong ones
    count as failed sign-ins)."""

    def check() -> User:
        if not verify_password(user.password_hash, body.password):
            raise Unauthorized("wrong password", param="password")
        return user

    check_password(guard, request, user.email, check)
    repo.delete_user(s, repo.get_user(s, user.id))
    s.commit()
    get_db(request).reclaim_space()
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {"ok": True, "deleted": True}


@router.get("/admin/users")
def admin_users(admin: AdminDep, s: DbDep) -> dict[str, Any]:
    """Accounts (no conversation data: admins cannot read other users' chats)."""
    return {"data": [user_dict(u) for u in repo.list_users(s)]}


@router.post("/admin/users")
def admin_create_user(body: NewUser, admin: AdminDep, s: DbDep) -> dict[str, Any]:
    return user_dict(repo.create_user(s, body.email, body.password, body.role))


@router.patch("/admin/users/{user_id}")
def admin_update_user(user_id: int, body: UserChange, admin: AdminDep, s: DbDep) -> dict[str, Any]:
    if body.role is None and body.disabled is None:
        raise InvalidRequest("nothing to change: send 'role' or 'disabled'")
    return user_dict(repo.update_user(s, repo.get_user(s, user_id), body.role, body.disabled))


@router.delete("/admin/users/{user_id}")
def admin_delete_user(user_id: int, request: Request, admin: AdminDep, s: DbDep) -> dict[str, Any]:
    target = repo.get_user(s, user_id)
    if target.id == admin.id:
        raise Forbidden("delete your own account from your settings instead")
    repo.delete_user(s, target)
    s.commit()
    get_db(request).reclaim_space()
    return {"ok": True}


@router.post("/admin/invites")
def admin_invite(admin: AdminDep, s: DbDep) -> dict[str, Any]:
    """A single-use invite code for sign-up in ``invite`` mode (shown once)."""
    return {"code": repo.create_invite(s, admin)}
