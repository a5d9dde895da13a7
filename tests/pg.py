"""A throwaway PostgreSQL server for tests: ``initdb`` in a temporary directory, started on a free
loopback port as the ``postgres`` system user (PostgreSQL refuses to run as root)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def available() -> bool:
    """Whether a PostgreSQL server binary is installed (Debian's postgresql-15)."""
    return (PG_BIN / "postgres").exists()


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start PostgreSQL; yield a SQLAlchemy URL for a fresh database ``cove``; stop it after."""
    root = Path(tempfile.mkdtemp(prefix="cove-pg-"))
    data = root / "data"
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(root, "postgres", "postgres")
    port = _free_port()
    subprocess.run([*prefix, str(PG_BIN / "initdb"), "-D", str(data), "-U", "cove",
                    "--auth=trust", "-E", "UTF8"], check=True, capture_output=True)
    proc = subprocess.Popen(
        [*prefix, str(PG_BIN / "postgres"), "-D", str(data), "-p", str(port),
         "-h", "127.0.0.1", "-k", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ok = subprocess.run([str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                                capture_output=True).returncode == 0
            if ok:
                break
            time.sleep(0.2)
        subprocess.run([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "cove",
                        "cove"], check=True, capture_output=True)
        yield f"postgresql+psycopg://cove@127.0.0.1:{port}/cove"
    finally:
        proc.terminate()
        proc.wait(20)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def fresh_database(url: str) -> Iterator[str]:
    """A new, empty database on the server of ``url`` (a SQLAlchemy URL); yield its URL; drop it
    (and any connection still open to it) afterwards."""
    from uuid import uuid4

    from sqlalchemy import create_engine, make_url, text

    name = f"t_{uuid4().hex[:16]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
