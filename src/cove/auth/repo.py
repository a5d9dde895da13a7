"""Account functions over a SQLAlchemy session: users, sign-up rules, sessions, API keys, invites.

Every function takes an open :class:`~sqlalchemy.orm.Session`; the caller commits. Errors are
:mod:`cove.errors` types (no HTTP here).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from cove.auth.secrets import (
    hash_password,
    new_api_key,
    new_token,
    token_hash,
    verify_nothing,
    verify_password,
)
from cove.errors import Conflict, Forbidden, InvalidRequest, NotFound, Unauthorized
from cove.store.tables import ApiKey, Invite, User, WebSession, utcnow

ROLES = ("admin", "user")
_EMAIL = re.compile(r"^[^@\s]{1,200}@[^@\s]{1,100}$")
MIN_PASSWORD = 8


def has_users(s: Session) -> bool:
    """Whether any account exists."""
    return s.execute(select(User.id).limit(1)).first() is not None


def _check_credentials(email: str, password: str) -> str:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise InvalidRequest("enter an e-mail address such as ada@example.org", param="email")
    if len(password) < MIN_PASSWORD:
        raise InvalidRequest(
            f"the password needs at least {MIN_PASSWORD} characters", param="password"
        )
    if len(password) > 1024:
        raise InvalidRequest("the password is too long (1024 characters at most)", param="password")
    return email


def create_user(s: Session, email: str, password: str, role: str = "user") -> User:
    """Create an account. The first account ever created is an admin whatever ``role`` says.

    Raises:
        InvalidRequest: malformed e-mail, short password, unknown role.
        Conflict: the e-mail is already registered.
    """
    email = _check_credentials(email, password)
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}", param="role")
    if s.execute(select(User.id).where(User.email == email)).first() is not None:
        raise Conflict("an account with this e-mail already exists", param="email")
    user = User(email=email, password_hash=hash_password(password),
                role="admin" if not has_users(s) else role)
    s.add(user)
    s.flush()
    return user


_SIGNUP_LOCK = threading.Lock()


def sign_up(s: Session, mode: str, email: str, password: str, invite: str | None) -> User:
    """Self-service sign-up under the sign-up ``mode`` (open, invite, closed).

    Raises:
        Forbidden: sign-up is closed, or an invite is needed and ``invite`` is missing or used.
        InvalidRequest, Conflict: as :func:`create_user`.
    """
    # Deciding "first account" and the mode check must not race with another sign-up (the
    # password hash is slow): serialise sign-ups and commit inside the critical section.
    with _SIGNUP_LOCK:
        first = not has_users(s)
        used: Invite | None = None
        if not first and mode == "closed":
            raise Forbidden("sign-up is closed; ask an administrator for an account")
        if not first and mode == "invite":
            used = s.get(Invite, token_hash(invite or ""))
            if used is None or used.used_at is not None:
                raise Forbidden("sign-up needs a valid invite code", param="invite")
        user = create_user(s, email, password)
        if used is not None:
            used.used_at = utcnow()
        s.commit()
        return user


def authenticate(s: Session, email: str, password: str) -> User:
    """The enabled account with these credentials.

    Every attempt costs one argon2 verification, against a dummy hash for an unknown or
    disabled account, so neither the answer nor its time tells whether the e-mail has one.

    Raises:
        Unauthorized: unknown e-mail, wrong password or disabled account (one message for all).
    """
    user = s.execute(select(User).where(User.email == email.strip().lower())).scalar_one_or_none()
    if user is None or user.disabled:
        verify_nothing(password)
        raise Unauthorized("wrong e-mail or password")
    if not verify_password(user.password_hash, password):
        raise Unauthorized("wrong e-mail or password")
    return user


@dataclass(frozen=True)
class NewSession:
    """A session just created: the cookie ``token`` (shown once) and its ``csrf`` token."""

    token: str
    csrf: str


def create_session(s: Session, user: User, days: int) -> NewSession:
    """Sign ``user`` in for ``days`` days."""
    token, csrf = new_token(), new_token()
    s.add(WebSession(token_hash=token_hash(token), user_id=user.id, csrf=csrf,
                     expires_at=utcnow() + timedelta(days=days)))
    return NewSession(token, csrf)


def session_for(s: Session, token: str) -> tuple[User, WebSession] | None:
    """The user and session row of a cookie ``token``, if valid, unexpired and enabled."""
    row = s.get(WebSession, token_hash(token))
    if row is None or row.expires_at < utcnow():
        return None
    user = s.get(User, row.user_id)
    if user is None or user.disabled:
        return None
    return user, row


def end_session(s: Session, token: str) -> None:
    """Sign out: delete the session of ``token`` (no error if it is gone)."""
    s.execute(delete(WebSession).where(WebSession.token_hash == token_hash(token)))


def create_api_key(s: Session, user: User, name: str) -> tuple[ApiKey, str]:
    """A new API key for ``user``: the row and the key itself (only shown now)."""
    key = new_api_key()
    row = ApiKey(user_id=user.id, name=name.strip()[:100], prefix=key[:12],
                 key_hash=token_hash(key))
    s.add(row)
    s.flush()
    return row, key


def user_for_key(s: Session, key: str) -> User | None:
    """The enabled owner of API key ``key``, recording its use; None if unknown."""
    row = s.execute(select(ApiKey).where(ApiKey.key_hash == token_hash(key))).scalar_one_or_none()
    if row is None:
        return None
    user = s.get(User, row.user_id)
    if user is None or user.disabled:
        return None
    row.last_used_at = utcnow()
    return user


def list_api_keys(s: Session, user: User) -> list[ApiKey]:
    """``user``'s API keys, oldest first."""
    return list(s.scalars(select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.id)))


def delete_api_key(s: Session, user: User, key_id: int) -> None:
    """Revoke one of ``user``'s keys.

    Raises:
        NotFound: no such key of this user.
    """
    n = s.execute(delete(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == user.id)).rowcount  # type: ignore[attr-defined]
    if not n:
        raise NotFound("no such API key")


def create_invite(s: Session, admin: User) -> str:
    """A new single-use invite code (only shown now)."""
    code = new_token()
    s.add(Invite(code_hash=token_hash(code), created_by=admin.id))
    return code


def list_users(s: Session) -> list[User]:
    """Every account, oldest first."""
    return list(s.scalars(select(User).order_by(User.id)))


def get_user(s: Session, user_id: int) -> User:
    """The account ``user_id``.

    Raises:
        NotFound: no such account.
    """
    user = s.get(User, user_id)
    if user is None:
        raise NotFound("no such account")
    return user


def admin_count(s: Session) -> int:
    """How many enabled admins there are."""
    return int(s.scalar(select(func.count(User.id)).where(
        User.role == "admin", User.disabled.is_(False))) or 0)


def update_user(s: Session, user: User, role: str | None, disabled: bool | None) -> User:
    """Change an account's role or disabled flag; disabling signs it out everywhere.

    Raises:
        InvalidRequest: unknown role, or the change would leave no enabled admin.
    """
    if role is not None and role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}", param="role")
    was_admin = user.role == "admin" and not user.disabled
    if role is not None:
        user.role = role
    if disabled is not None:
        user.disabled = disabled
        if disabled:
            s.execute(delete(WebSession).where(WebSession.user_id == user.id))
    s.flush()
    if was_admin and admin_count(s) == 0:
        raise InvalidRequest("there must be at least one enabled admin")
    return user


def delete_user(s: Session, user: User) -> None:
    """Hard-delete an account and (by cascade) every row of it.

    Raises:
        InvalidRequest: it is the last enabled admin while other accounts exist.
    """
    if user.role == "admin" and not user.disabled and admin_count(s) == 1:
        others = s.scalar(select(func.count(User.id)).where(User.id != user.id)) or 0
        if others:
            raise InvalidRequest("make another account admin before deleting the last admin")
    s.delete(user)
    s.flush()
