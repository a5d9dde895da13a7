"""``cove knowledge add-pack|list-packs|rm-pack``: knowledge packs (ZIM archives) in the
terminal. Packs are shared by every user of the instance; managing them is the operator's (the
person who runs ``cove`` on the machine, hence an admin) job. Exit status 1 with a one-line
message for a missing, broken or duplicate pack, or when libzim (``cove[zim]``) is missing.
"""

from __future__ import annotations

import click


def register(knowledge: click.Group) -> None:
    """Add the pack commands to the ``knowledge`` group."""

    @knowledge.command("add-pack")
    @click.argument("file", type=click.Path(dir_okay=False))
    @click.option("--name", default=None, help="Name in URLs (default: from the pack).")
    @click.option("--no-verify", is_flag=True,
                  help="Skip the checksum of the whole file (quicker for huge packs).")
    def add_pack(file: str, name: str | None, no_verify: bool) -> None:
        """Register the ZIM archive FILE (read in place: keep the file there) as a knowledge
        pack for every user. Needs libzim: pip install 'cove[zim]'."""
        from cove.cli.common import fail, read_settings
        from cove.errors import CoveError
        from cove.features.search import packs
        from cove.store.db import open_database

        db = open_database(read_settings())
        try:
            with db.session() as s:
                p = packs.add_pack(s, file, name, verify=not no_verify)
                out = packs.pack_dict(p)
        except CoveError as e:
            fail(e)
        finally:
            db.close()
        index = "full-text index" if out["fulltext"] else "no full-text index: titles only"
        click.echo(f"added pack {out['name']!r}: {out['title']} ({out['language'] or '?'}, "
                   f"{out['date'] or 'undated'}, {out['articles']} articles, {index})")

    @knowledge.command("list-packs")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def list_packs(as_json: bool) -> None:
        """List the knowledge packs with their metadata."""
        import json

        from cove.cli.common import read_settings
        from cove.features.search import packs
        from cove.store.db import open_database

        db = open_database(read_settings())
        try:
            with db.session() as s:
                rows = [packs.pack_dict(p) | {"path": p.path} for p in packs.list_packs(s)]
        finally:
            db.close()
        if as_json:
            click.echo(json.dumps(rows, indent=2))
            return
        if not rows:
            click.echo("no knowledge packs (add one: cove knowledge add-pack FILE.zim)")
        for r in rows:
            click.echo(f"{r['name']}  {r['title']}  [{r['language'] or '?'}]  "
                       f"{r['date'] or 'undated'}  {r['articles']} articles"
                       f"{'' if r['fulltext'] else '  (titles only)'}\n    {r['path']}")

    @knowledge.command("rm-pack")
    @click.argument("name")
    def rm_pack(name: str) -> None:
        """Unregister the knowledge pack NAME (the file itself is kept)."""
        from cove.cli.common import fail, read_settings
        from cove.errors import CoveError
        from cove.features.search import packs
        from cove.store.db import open_database

        db = open_database(read_settings())
        try:
            with db.session() as s:
                p = packs.remove_pack(s, name)
                path = p.path
        except CoveError as e:
            fail(e)
        finally:
            db.close()
        click.echo(f"removed pack {name!r} (the file {path} is untouched)")
