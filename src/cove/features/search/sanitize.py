"""Knowledge-pack articles made safe to show: HTML cleaned by nh3 (the Python binding of the
Rust crate ammonia, MIT), an allow-list sanitiser. What is left: text, headings, lists, tables,
figures, links and images. Removed: scripts, styles, forms, frames, objects, event handlers,
``style`` attributes, and every URL that is not relative to the article (a scheme such as
``https:``, ``data:`` or ``javascript:``, a protocol-relative ``//host``, or an absolute path),
so an article served offline can reach nothing outside its own pack.
"""

from __future__ import annotations

import html
import re

import nh3

TAGS = (set(nh3.ALLOWED_TAGS) | {"section", "main", "picture", "figure", "figcaption",
                                 "details", "summary", "caption"}) - {"area", "map"}
ATTRIBUTES = {
    "*": {"id", "title", "lang", "dir"},
    "a": {"href", "name"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "ol": {"start"},
}
# dropped together with everything inside them
DROP_WITH_CONTENT = {"script", "style", "title", "noscript", "template", "iframe", "object",
                     "embed", "svg", "math", "select", "textarea", "button"}
_SCHEME = re.compile(r"^\s*[a-zA-Z][a-zA-Z0-9+.-]*:")
URL_ATTRIBUTES = {"href", "src"}


def relative(url: str) -> bool:
    """Whether ``url`` is relative to the page (no scheme, not ``//host``, not ``/path``); a
    bare ``#fragment`` is relative too."""
    u = url.strip().replace("\\", "/")
    return not (_SCHEME.match(u) or u.startswith("/"))


def _keep(tag: str, attribute: str, value: str) -> str | None:
    if attribute in URL_ATTRIBUTES and not relative(value):
        return None
    return value


def clean(body: str) -> str:
    """``body`` (an HTML document or fragment) as safe HTML (see the module docstring)."""
    return nh3.clean(body, tags=TAGS, attributes=ATTRIBUTES, clean_content_tags=DROP_WITH_CONTENT,
                     attribute_filter=_keep, url_schemes=set(), link_rel="noopener noreferrer",
                     strip_comments=True)


def page(title: str, body: str, pack_title: str, date: str, lang: str = "") -> str:
    """A whole HTML page for an article: a header naming the pack and its date, then the
    cleaned ``body``."""
    when = f" ({html.escape(date)})" if date else ""
    first = lang.split(",")[0].strip().lower()  # ZIM: ISO 639-3 codes, comma-separated
    lang_attr = f' lang="{first}"' if re.fullmatch(r"[a-z]{2,3}", first) else ""
    return ("<!doctype html>\n"
            f'<html{lang_attr}><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)} — {html.escape(pack_title)}</title></head>\n"
            f'<body><p class="cove-pack">From the knowledge pack <b>{html.escape(pack_title)}'
            f"</b>{when}, served offline by Cove.</p>\n<main>{clean(body)}</main></body></html>\n")
