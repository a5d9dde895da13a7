"""Knowledge-pack routes: listing and searching packs (``/web/knowledge/packs``), registering
and removing them (admins), and the articles themselves, served offline
(``/knowledge/<pack>/<path>``).

Packs are shared by every user of the instance: signed-in users and, where guest use is on
(``COVE_GUEST``, on by default on loopback), guests without an account may list and search
them and read their articles. Documents stay per user (:mod:`.routes`).

An article (HTML) is sanitised (:mod:`.sanitize`) and sent with a Content-Security-Policy
that runs no script and loads nothing but this server's images; the pack's images are sent
with their own content type; other entries (scripts, styles, fonts) are not served. A redirect
entry answers 302 to its target; ``/knowledge/<pack>/`` to the pack's main page. The handlers
are plain ``def``: libzim reads run in FastAPI's worker threads.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from cove.auth.deps import AdminDep, CallerDep, DbDep, SettingsDep
from cove.errors import NotFound, Unauthorized
from cove.features.search import packs, sanitize, service, zim
from cove.features.search.store import Pack

ARTICLE_CSP = ("default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml",
               "image/avif", "image/x-icon", "image/vnd.microsoft.icon", "image/bmp")
CACHE = "private, max-age=3600"


def pack_reader(caller: CallerDep, settings: SettingsDep) -> None:
    """Gate of the shared packs: a signed-in user, or anyone while guest use is on.

    Raises:
        Unauthorized: nobody signed in and guest use is off.
    """
    if caller.user is None and not settings.guest_enabled:
        raise Unauthorized("sign in to use the knowledge packs (guest use is off)")


router = APIRouter(dependencies=[Depends(pack_reader)])


class PackSearch(BaseModel):
    query: str = Field(min_length=1, max_length=service.MAX_QUERY_CHARS)
    packs: list[str] | None = Field(None, max_length=100)
    limit: int = Field(5, ge=1, le=50)


class NewPack(BaseModel):
    path: str = Field(min_length=1, max_length=4096)
    name: str | None = Field(None, max_length=100)


@router.get("/web/knowledge/packs")
def list_packs(s: DbDep) -> dict[str, Any]:
    return {"packs": [packs.pack_dict(p) for p in packs.list_packs(s)]}


@router.post("/web/knowledge/packs", status_code=201)
def add_pack(body: NewPack, admin: AdminDep, s: DbDep) -> dict[str, Any]:
    """Register the ZIM file at ``path`` on the server's disk (admins)."""
    return packs.pack_dict(packs.add_pack(s, body.path, body.name, added_by=admin.id))


@router.delete("/web/knowledge/packs/{name}")
def remove_pack(name: str, admin: AdminDep, s: DbDep) -> dict[str, Any]:
    packs.remove_pack(s, name)
    return {"ok": True, "deleted": name}


@router.post("/web/knowledge/packs/search")
def search(body: PackSearch, s: DbDep) -> dict[str, Any]:
    """``{"query", "results": [passage, ...]}`` (see :func:`packs.search_packs`)."""
    return {"query": body.query,
            "results": packs.search_packs(s, body.query, body.packs, limit=body.limit)}


@router.get("/knowledge/{name}/{path:path}", include_in_schema=False)
def article(name: str, path: str, s: DbDep) -> Response:
    """The entry ``path`` of pack ``name``: a sanitised article page, an image, or a
    redirect. Raises NotFound for a missing pack or entry and for entries not served."""
    pack = packs.get_pack(s, name)
    try:
        return _entry(pack, name, path)
    except zim.BadPack as e:  # the file was moved, replaced or damaged since it was added
        raise NotFound(f"pack {name!r} cannot be read now: {e.message}", param="pack") from e


def _entry(pack: Pack, name: str, path: str) -> Response:
    if not path:
        main = zim.main_path(pack.path)
        if main is None:
            raise NotFound(f"pack {name!r} has no main page", param="path")
        return RedirectResponse(f"/knowledge/{name}/{quote(main)}", status_code=302)
    content = zim.read(pack.path, path)
    if content is None:
        raise NotFound(f"no article {path!r} in pack {name!r}", param="path")
    if content.path != path:
        return RedirectResponse(f"/knowledge/{name}/{quote(content.path)}", status_code=302)
    mime = content.mimetype.split(";")[0].strip().lower()
    if mime == "text/html":
        body = sanitize.page(content.title or path, content.data.decode("utf-8", "replace"),
                             pack.title, pack.date, pack.language)
        return Response(body, media_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": ARTICLE_CSP, "Cache-Control": CACHE})
    if mime in IMAGE_TYPES:
        return Response(content.data, media_type=mime, headers={"Cache-Control": CACHE})
    if mime == "text/plain":
        return Response(content.data, media_type="text/plain; charset=utf-8",
                        headers={"Cache-Control": CACHE})
    raise NotFound(f"{path!r} in pack {name!r} is {mime}, which Cove does not serve",
                   param="path")
