"""Accounts: argon2 passwords, web sessions with CSRF tokens, hashed API keys, invites, roles."""
