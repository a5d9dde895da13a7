"""``cove meme``: explain a meme, list templates, render one, or get caption ideas (registered
by :mod:`cove.cli.main`). Runs the model in-process like ``cove run``; the user's own templates
live in the server's store, so the terminal uses the built-in ones and image files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise click.ClickException(f"cannot read {path}: {e.strerror}") from e


def _texts(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for p in pairs:
        name, sep, text = p.partition("=")
        if not sep:
            raise click.BadParameter(f"{p!r}: expected BOX=TEXT", param_hint="--text")
        out[name.strip()] = text
    return out


async def _explain(pipeline: Any, data: bytes, model: str | None, engine: str,
                   max_tokens: int, seed: int | None, console: Console | None) -> dict[str, Any]:
    from cove.chat import ChatDelta, ChatDone
    from cove.features.memes import service
    from cove.features.memes.images import load_image
    from cove.features.memes.understand import describe, read_meme, start_explanation

    settings = pipeline.settings

    def analyse() -> Any:
        im = load_image(data, max_pixels=settings.meme_max_pixels)
        return im, read_meme(im, service.builtin_candidates(), engine, service.descriptions())

    im, reading = await asyncio.to_thread(analyse)
    vision = await describe(pipeline, im)
    found = reading.to_dict()
    if console is not None:
        t = found["template"]
        console.print(f"Template: {t['name'] if t else 'not recognised'}  "
                      f"(OCR: {found['engine']})", markup=False, style="dim")
        for r in found["regions"]:
            console.print(f"[{r['box_name'] or r['position']}] {r['text']}", markup=False)
        if not found["regions"]:
            console.print("No text was found in the image.", markup=False)
        console.print(vision.note, markup=False, style="dim")
        console.print()
    stream = await start_explanation(pipeline, reading, vision, max_tokens=max_tokens,
                                     seed=seed, model=model)
    parts: list[str] = []
    async for item in stream:
        if isinstance(item, ChatDelta) and item.kind == "content":
            parts.append(item.text)
            if console is not None:
                console.print(item.text, end="", markup=False, soft_wrap=True)
        elif isinstance(item, ChatDone) and console is not None:
            console.print()
    return {"model": stream.model, **{k: found[k] for k in ("text", "regions", "template")},
            "ocr_engine": found["engine"], "vision": vision.to_dict(),
            "explanation": "".join(parts)}


def register(cli: click.Group) -> None:
    """Add the ``meme`` command group to ``cli``."""

    @cli.group()
    def meme() -> None:
        """Memes: explain one, list templates, render, caption ideas."""

    @meme.command()
    @click.argument("image", type=click.Path(dir_okay=False))
    @click.option("--model", "-m", default=None, help="Chat model (default: the bundled one).")
    @click.option("--ocr-engine", type=click.Choice(["auto", "rapidocr", "tesseract"]),
                  default=None, help="OCR engine (default: COVE_OCR_ENGINE).")
    @click.option("--max-tokens", type=click.IntRange(min=1), default=400, show_default=True)
    @click.option("--seed", type=int, default=None)
    @click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
    def explain(image: str, model: str | None, ocr_engine: str | None, max_tokens: int,
                seed: int | None, as_json: bool) -> None:
        """Read IMAGE's text by region, recognise its template, and explain the meme."""
        from cove.cli.common import open_registry, read_settings, run_then_close
        from cove.pipeline import ChatPipeline

        data = _read(image)
        pipeline = ChatPipeline(s := read_settings(), open_registry(s))
        console = None if as_json else Console(highlight=False)
        result = run_then_close(pipeline, _explain(pipeline, data, model,
                                                   ocr_engine or s.ocr_engine, max_tokens,
                                                   seed, console))
        if as_json:
            click.echo(json.dumps(result, indent=2, ensure_ascii=False))

    @meme.command()
    def templates() -> None:
        """List the built-in templates and their text boxes."""
        from cove.features.memes.builtin import BUILTINS

        for key, (t, _) in BUILTINS.items():
            click.echo(f"{key:14} {t.name}: {', '.join(b.name for b in t.boxes)}")

    @meme.command()
    @click.argument("template")
    @click.option("--text", "-t", "pairs", multiple=True, metavar="BOX=TEXT",
                  help="Text of a box (repeat for each box).")
    @click.option("--output", "-o", type=click.Path(dir_okay=False), required=True,
                  help="File to write (.png, .jpg or .webp).")
    def render(template: str, pairs: tuple[str, ...], output: str) -> None:
        """Render TEMPLATE (a built-in key, or an image file with top and bottom boxes)."""
        from cove.cli.common import fail
        from cove.errors import CoveError

        try:
            base = _base(template)
            fmt = _format(output)
            from cove.features.memes.service import render_bytes

            Path(output).write_bytes(render_bytes(base, _texts(pairs), fmt))
        except CoveError as e:
            fail(e)
        click.echo(output)

    @meme.command()
    @click.argument("template")
    @click.argument("idea")
    @click.option("-n", "n", type=click.IntRange(1, 4), default=3, show_default=True)
    @click.option("--model", "-m", default=None)
    @click.option("--seed", type=int, default=None)
    @click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
                  help="Write the variants side by side to this PNG.")
    def captions(template: str, idea: str, n: int, model: str | None, seed: int | None,
                 output: str | None) -> None:
        """Caption ideas for TEMPLATE on IDEA from the chat model, N variants at once."""
        from cove.cli.common import fail, open_registry, read_settings
        from cove.errors import CoveError, InvalidRequest
        from cove.features.memes.captions import suggest
        from cove.features.memes.images import encode
        from cove.features.memes.render import render as draw
        from cove.features.memes.render import side_by_side
        from cove.pipeline import ChatPipeline

        pipeline = ChatPipeline(s := read_settings(), open_registry(s))
        try:
            base = _base(template)
            _, variants = asyncio.run(suggest(pipeline, base.template, idea, n=n, model=model,
                                              seed=seed))
        except CoveError as e:
            fail(e)
        finally:
            pipeline.close()
        images = []
        for i, v in enumerate(variants, 1):
            click.echo(f"{i}. " + json.dumps(v, ensure_ascii=False))
            try:
                images.append(draw(base.image, base.template.boxes, v))
            except InvalidRequest as e:
                click.echo(f"   (not rendered: {e.message})")
        if output and images:
            Path(output).write_bytes(encode(side_by_side(images), "png"))
            click.echo(output)


def _format(path: str) -> str:
    ext = Path(path).suffix.lower().lstrip(".")
    return {"jpg": "jpeg"}.get(ext, ext or "png")


def _base(template: str) -> Any:
    from cove.cli.common import read_settings
    from cove.features.memes import service
    from cove.features.memes.builtin import BUILTINS

    if template in BUILTINS:
        return service.Base(BUILTINS[template][0], service.builtin_image(template))
    if Path(template).is_file():
        return service.image_base(_read(template), None, read_settings().meme_max_pixels)
    raise click.ClickException(f"no built-in template {template!r} and no such image file "
                               f"(built-ins: {', '.join(BUILTINS)})")
