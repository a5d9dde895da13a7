"""Password hashing (argon2id via argon2-cffi) and random tokens stored as SHA-256 hashes.

Session tokens, API keys and invite codes are 256-bit random values, so a fast hash (SHA-256) is
enough to store them: knowing the hash does not help to find the token. Passwords are low-entropy
and get argon2id with argon2-cffi's default (RFC 9106 low-memory) parameters.
"""

from __future__ import annotations

import hashlib
import secrets
from functools import lru_cache

from argon2 import PasswordHasher, extract_parameters
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


# The argon2id hash of a random password nobody kept (made with argon2-cffi's defaults).
_DUMMY_HASH = ("$argon2id$v=19$m=65536,t=3,p=4$Fdf81VwZyQIhyvMxWprXdw$"
               "++9ionWIcLLSsOsdbge/fM18+RA8oVEM7aWHxK1LTII")


@lru_cache(maxsize=1)
def dummy_hash() -> str:
    """A hash with the parameters new passwords get (the stored one, unless argon2-cffi's
    defaults changed: then one made once, from a random password)."""
    p, h = extract_parameters(_DUMMY_HASH), _hasher
    if (p.type, p.time_cost, p.memory_cost, p.parallelism, p.hash_len, p.salt_len) == (
            h.type, h.time_cost, h.memory_cost, h.parallelism, h.hash_len, h.salt_len):
        return _DUMMY_HASH
    return _hasher.hash(new_token())


def verify_nothing(password: str) -> bool:
    """Spend on ``password`` what :func:`verify_password` spends on a real account's hash (one
    argon2 verification with the same parameters), then return False: a sign-in for an unknown
    or disabled account takes as long as a wrong password, so its time does not tell whether
    the e-mail has an account."""
    verify_password(dummy_hash(), password)
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
