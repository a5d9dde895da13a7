"""Password hashing (argon2id via argon2-cffi) and random tokens stored as SHA-256 hashes.

Session tokens, API keys and invite codes are 256-bit random values, so a fast hash (SHA-256) is
enough to store them: knowing the hash does not help to find the token. Passwords are low-entropy
and get argon2id with argon2-cffi's default (RFC 9106 low-memory) parameters.
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()

API_KEY_PREFIX = "cove-"


def hash_password(password: str) -> str:
    """The argon2id hash string of ``password`` (PHC format, salt included)."""
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash``; never raises for a wrong password."""
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    """A fresh URL-safe random token (32 bytes of entropy)."""
    return secrets.token_urlsafe(32)


def new_api_key() -> str:
    """A fresh API key: ``cove-`` followed by 43 URL-safe characters."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Hex SHA-256 of ``token`` (what the database stores)."""
    return hashlib.sha256(token.encode()).hexdigest()
