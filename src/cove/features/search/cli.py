"""``cove knowledge add|list|search`` and ``cove run --search``: collections in the terminal
(registered by :mod:`cove.cli.main`; the pack commands are in :mod:`.pack_cli`). Collections
belong to an account: ``--user EMAIL`` picks it (default: the first admin, the instance's
owner)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

if TYPE_CHECKING:
    from cove.config import Settings
    from cove.store.db import Database


NO_ACCOUNT = ("knowledge collections belong to an account, and there is none yet: start "
              "`cove serve`, open http://127.0.0.1:11435/ and sign up (the first account is "
              "the admin, whose collections these commands use)")


def files_of(paths: tuple[str, ...]) -> Iterator[Path]:
    """The files named, and the readable files under the folders named (sorted, hidden ones
    skipped), each once."""
    from cove.features.search.extract import KINDS

    seen: set[Path] = set()
    for p in map(Path, paths):
        found = [p] if p.is_file() else sorted(
            f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in KINDS
            and not any(part.startswith(".") for part in f.relative_to(p).parts))
        for f in found:
            if f.resolve() not in seen:
                seen.add(f.resolve())
                yield f


def owner(db: Database, email: str | None) -> int:
    """The id of the account ``email`` (default: the first admin)."""
    from sqlalchemy import select

    from cove.cli.common import fail
    from cove.store.tables import User

    with db.session() as s:
        q = select(User.id).where(User.email == email.strip().lower()) if email else \
            select(User.id).where(User.role == "admin").order_by(User.id).limit(1)
        found = s.scalar(q)
    if found is None:
        fail(f"no account {email!r}" if email else NO_ACCOUNT)
    return int(found)


def _open(user: str | None) -> tuple[Settings, Database, int]:
    from cove.cli.common import read_settings
    from cove.store.db import open_database

    settings = read_settings()
    db = open_database(settings)
    return settings, db, owner(db, user)


def register(cli: click.Group) -> None:
    """Add the ``knowledge`` command group to ``cli``."""

    @cli.group()
    def knowledge() -> None:
        """Your document collections (add files, list, search) and the knowledge packs."""

    from cove.features.search.pack_cli import register as register_packs

    register_packs(knowledge)

    user_option = click.option("--user", "user", default=None, metavar="EMAIL",
                               help="Account that owns the collections (default: first admin).")

    @knowledge.command("add")
    @click.argument("collection")
    @click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
    @user_option
    def add(collection: str, paths: tuple[str, ...], user: str | None) -> None:
        """Add files (and the files in folders) to COLLECTION, creating it if needed. Each
        file is added whole or not at all; Ctrl-C stops after undoing the file in progress."""
        from rich.progress import Progress

        from cove.errors import CoveError
        from cove.features.search import service

        settings, db, user_id = _open(user)
        console = Console(stderr=True, highlight=False)
        files = list(files_of(paths))
        from cove.cli.common import counted

        added = failed = unchanged = 0
        try:
            with db.session() as s:
                c = service.find_collection(s, user_id, collection) or \
                    service.create_collection(s, user_id, collection)
                cid = c.id
            with Progress(console=console, transient=False) as bar:
                task = bar.add_task("adding", total=len(files))
                for f in files:
                    bar.update(task, description=f.name[:40])
                    try:
                        data = f.read_bytes()
                        with db.session() as s:  # adding a folder again adds what is new
                            service.check_new(s, user_id, cid, f.name, data)
                        prepared = service.prepare(f.name, data, settings.max_upload_bytes,
                                                   settings.ocr_engine)
                        with db.session() as s:
                            service.add_document(s, user_id, cid, prepared)
                        added += 1
                        bar.console.print(f"added {f} ({counted(len(prepared.chunks), 'passage')})"
                                          + "".join(f"\n  note: {n}"
                                                    for n in prepared.extracted.notes),
                                          markup=False)
                    except service.DuplicateDocument:
                        bar.console.print(f"unchanged {f}: already in '{collection}'",
                                          markup=False, style="dim")
                        unchanged += 1
                    except CoveError as e:
                        failed += 1
                        bar.console.print(f"skipped {f}: {e.message}", markup=False,
                                          style="yellow")
                    bar.advance(task)
        except KeyboardInterrupt:
            console.print(f"cancelled: {added} file(s) added; the file in progress was not "
                          "kept", markup=False)
            sys.exit(130)
        except CoveError as e:
            from cove.cli.common import fail

            fail(e)
        finally:
            db.close()
        console.print(f"{added} added, " + (f"{unchanged} unchanged, " if unchanged else "")
                      + f"{failed} skipped, to {collection!r}", markup=False)
        if failed and not added:
            sys.exit(1)

    @knowledge.command("list")
    @user_option
    def list_cmd(user: str | None) -> None:
        """List your collections and their documents."""
        from cove.cli.common import counted
        from cove.features.search import service

        _, db, user_id = _open(user)
        try:
            with db.session() as s:
                for c in service.list_collections(s, user_id):
                    docs = service.list_documents(s, user_id, c.id)
                    click.echo(f"{c.name}  ({len(docs)} documents)")
                    for d in docs:
                        pages = f", {counted(d.pages, 'page')}" if d.pages else ""
                        click.echo(f"  {d.id}  {d.filename}  ({d.kind}, {d.bytes} bytes{pages})")
        finally:
            db.close()

    @knowledge.command("search")
    @click.argument("collection")
    @click.argument("query")
    @click.option("--limit", "-n", type=click.IntRange(1, 50), default=5, show_default=True)
    @user_option
    def search_cmd(collection: str, query: str, limit: int, user: str | None) -> None:
        """Print the passages of COLLECTION that best match QUERY."""
        from cove.cli.common import fail
        from cove.errors import CoveError
        from cove.features.search import service

        _, db, user_id = _open(user)
        try:
            with db.session() as s:
                c = service.find_collection(s, user_id, collection)
                if c is None:
                    fail(f"no collection {collection!r}")
                hits = service.search(s, user_id, [c.id], query, limit=limit)
        except CoveError as e:
            fail(e)
        finally:
            db.close()
        if not hits:
            click.echo("no matches")
        for i, h in enumerate(hits, 1):
            where = h["document"] + (f", page {h['page']}" if h["page"] else "") + (
                f" ({h['heading']})" if h["heading"] else "")
            click.echo(f"[{i}] {where}  score {h['score']:.4f}\n    {h['snippet']}")


def search_hooks(settings: Settings, collections: tuple[str, ...], user: str | None,
                 console: Console) -> Any:
    """The :class:`~cove.cli.chat.Hooks` of ``cove run --search``: each question searches
    ``collections`` of the account (all of them when none is named; the web too when
    ``COVE_SEARXNG_URL`` is set, and the knowledge packs when there are any and libzim is
    installed, when no collection is named), the passages go into the prompt, and the
    numbered sources are printed after the answer with any ``[n]`` the answer names that is
    not among them. Without an account only the web and the packs can be searched."""
    from cove.cli.chat import Hooks
    from cove.cli.common import fail
    from cove.errors import CoveError
    from cove.features.search import answers, web
    from cove.features.search.sources import Context, label
    from cove.store.db import open_database

    db = open_database(settings)
    has_account = _has_account(db)
    has_packs = not collections and _has_packs(db)
    if not has_account and (collections or not (web.enabled(settings) or has_packs)):
        fail(NO_ACCOUNT)
    ctx = Context(db, settings, owner(db, user) if has_account else None)
    wants: dict[str, Any] = {
        "collections": list(collections) or (True if has_account else None),
        "web": True if web.enabled(settings) and not collections else None,
        "packs": True if has_packs else None}
    found: dict[str, Any] = {}

    async def prepare(req: Any) -> Any:
        question = req.messages[-1].content
        try:
            revised, result = await answers.retrieve(ctx, wants, question, 5, req)
        except CoveError as e:
            fail(e)
        found.clear()
        found.update(result)
        for w in result["warnings"]:
            console.print(f"warning: {w}", style="yellow", markup=False)
        if not result["sources"]:
            console.print("(no sources found; answering without)", style="dim", markup=False)
        return revised

    def after(answer: str) -> None:
        if not found.get("sources"):
            return
        checked = answers.check_citations(found, answer)
        console.print("\nSources:", style="bold", markup=False)
        for s in checked["sources"]:
            where = label(s) + (f" <{s['url']}>" if s.get("url") else "")
            console.print(f"[{s['index']}] {where}\n    {s['snippet']}", markup=False,
                          highlight=False)
        if checked["invalid_citations"]:
            marks = ", ".join(f"[{n}]" for n in checked["invalid_citations"])
            console.print(f"note: the answer cites {marks}, which no source has", style="yellow",
                          markup=False)

    return Hooks(prepare, after)


def _has_account(db: Database) -> bool:
    from sqlalchemy import func, select

    from cove.store.tables import User

    with db.session() as s:
        return bool(s.scalar(select(func.count()).select_from(User)))


def _has_packs(db: Database) -> bool:
    """Whether knowledge packs are registered and libzim can read them (without the ``zim``
    extra the packs are left out rather than failing every question)."""
    from cove.features.search import packs, zim

    if not zim.available():
        return False
    with db.session() as s:
        return bool(packs.list_packs(s))
