"""``/web`` routes for accounts: session, sign-up, sign-in/out, API keys, admin, data rights
(export, delete account). Thin: the work is in :mod:`cove.auth.repo` and :mod:`cove.chats.repo`.
"""

from __future__ import annotations

import json
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
    SettingsDep,
    UserDep,
    check_origin,
    get_db,
)
from cove.auth.secrets import verify_password
from cove.chats.repo import export_user
from cove.errors import Forbidden, InvalidRequest, Unauthorized
from cove.store.tables import ApiKey, User

router = APIRouter(prefix="/web")


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


def _sign_in(request: Request, response: Response, s: Any, user: User, days: int) -> dict[str, Any]:
    new = repo.create_session(s, user, days)
    response.set_cookie(SESSION_COOKIE, new.token, max_age=days * 86400, httponly=True,
                        samesite="lax", secure=request.url.scheme == "https", path="/")
    return {"user": user_dict(user), "csrf": new.csrf}


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
           settings: SettingsDep) -> dict[str, Any]:
    check_origin(request)
    user = repo.sign_up(s, settings.signup, body.email, body.password, body.invite)
    return _sign_in(request, response, s, user, settings.session_days)


@router.post("/login")
def login(body: Credentials, request: Request, response: Response, s: DbDep,
          settings: SettingsDep) -> dict[str, Any]:
    check_origin(request)
    user = repo.authenticate(s, body.email, body.password)
    return _sign_in(request, response, s, user, settings.session_days)


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


@router.get("/export")
def export(user: UserDep, s: DbDep) -> Response:
    """All of the user's data as one JSON file (download)."""
    body = json.dumps(export_user(s, user), ensure_ascii=False, indent=2)
    return Response(body, media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="cove-export-{user.id}.json"',
        "Cache-Control": "no-store"})


@router.delete("/account")
def delete_account(body: Password, request: Request, response: Response, user: UserDep,
                   s: DbDep) -> dict[str, Any]:
    """Hard-delete the signed-in account and everything of it (password required)."""
    if not verify_password(user.password_hash, body.password):
        raise Unauthorized("wrong password", param="password")
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
