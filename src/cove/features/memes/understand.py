"""Understanding a meme: OCR regions, the template by perceptual hash, a vision model's
description when one is installed, then the chat model's explanation streamed through the one
chat pipeline.

The picture is described by an installed vision model (one with a projector, see
:meth:`ChatPipeline.vision_models`) through the pipeline's image input, like any chat request
with an image; when none is installed the reading says so plainly and the explanation rests on
the text and layout. :func:`register_vision` replaces the describer (tests, other engines).
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image

from cove.engine.types import SamplingParams
from cove.features.memes import ocr
from cove.features.memes.layout import Region, assign, regions
from cove.features.memes.phash import Match, best_match
from cove.features.memes.templates import TextBox
from cove.pipeline import ChatMessage, ChatPipeline, ChatRequest, ChatStream

# (pipeline, model name, PNG bytes) -> a description of the picture
VisionDescriber = Callable[[ChatPipeline, str, bytes], Awaitable[str]]
_describers: list[VisionDescriber] = []
Candidate = tuple[str, str, Image.Image, list[TextBox]]  # id, name, image, boxes

SYSTEM = ("You explain internet memes to someone who has not seen this one. You are given the "
          "text read from the image, where it sits, the template if it was recognised and, "
          "when available, a description of the picture. Be concrete and brief.")
NO_VISION = ("No vision model is installed, so nothing here looked at the picture itself: the "
             "explanation rests on the text read from the image, its layout and the template.")


DESCRIBE = ("Describe this picture for someone who cannot see it, in two or three sentences: "
            "who or what is in it, what they are doing and the mood. Do not read out its text.")


def register_vision(describe: VisionDescriber) -> None:
    """Let ``describe`` describe pictures for explanations instead of
    :func:`describe_with_pipeline`."""
    _describers[:] = [describe]


async def describe_with_pipeline(pipeline: ChatPipeline, model: str, png: bytes) -> str:
    """``model``'s description of the picture ``png``, asked as a chat request with an image
    (120 tokens at most, temperature 0.2).

    Raises:
        Whatever :meth:`ChatPipeline.start_chat` raises (InvalidRequest for an image the
        model cannot read, Overloaded, ...).
    """
    params = SamplingParams(max_tokens=120, temperature=0.2)
    stream = await pipeline.start_chat(ChatRequest(
        [ChatMessage("user", DESCRIBE, images=[png])], params, model,
        frozenset({"max_tokens", "temperature"})))
    return (await stream.collect()).content


def vision_models(pipeline: ChatPipeline) -> list[str]:
    """Installed models that have a vision projector, the default model first."""
    return pipeline.vision_models()


@dataclass
class Vision:
    """The picture's description: ``model`` that gave it, ``description`` (None when there
    is none) and a plain ``note`` saying why not."""

    model: str | None
    description: str | None
    note: str

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "description": self.description, "note": self.note}


async def describe(pipeline: ChatPipeline, im: Image.Image, model: str | None = None) -> Vision:
    """A vision model's description of ``im`` (``model``, else the first installed vision
    model), or a :class:`Vision` whose note says plainly why there is none."""
    names = [model] if model else vision_models(pipeline)
    if not names:
        return Vision(None, None, NO_VISION)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    describer = _describers[0] if _describers else describe_with_pipeline
    text = await describer(pipeline, names[0], buf.getvalue())
    return Vision(names[0], text.strip(), f"Described by {names[0]}.")


@dataclass
class Reading:
    """What was read from a meme image: the OCR result, its ``regions`` (named after the
    template's boxes when the ``template`` was recognised) and the image size."""

    result: ocr.OcrResult
    regions: list[Region]
    template: Match | None
    template_description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """``{"engine", "text", "width", "height", "regions": [...], "template": {"id",
        "name", "distance"} | None}``."""
        t = self.template
        return {"engine": self.result.engine, "text": "\n".join(r.text for r in self.regions),
                "width": self.result.width, "height": self.result.height,
                "regions": [r.to_dict() for r in self.regions],
                "template": None if t is None else {"id": t.id, "name": t.name,
                                                    "distance": t.distance}}


def read_meme(im: Image.Image, candidates: list[Candidate], engine: str = "auto",
              descriptions: dict[str, str] | None = None) -> Reading:
    """OCR ``im``, group its text into regions and recognise its template among
    ``candidates`` (blocking: run it in a worker thread).

    Raises:
        OcrUnavailable: no OCR engine installed. InvalidRequest: unknown engine.
    """
    result = ocr.read(im, engine)
    found = regions(result)
    text_boxes = [(r.fraction[0], r.fraction[1], r.fraction[0] + r.fraction[2],
                   r.fraction[1] + r.fraction[3]) for r in found]
    match = best_match(im, text_boxes, candidates)
    if match is not None:
        boxes = next(c[3] for c in candidates if c[0] == match.id)
        found = assign(found, boxes, im.width, im.height)
    return Reading(result, found, match,
                   (descriptions or {}).get(match.id, "") if match else "")


def prompt(reading: Reading, vision: Vision) -> str:
    """The user message asking for the explanation."""
    lines = []
    t = reading.template
    lines.append(f"Template: {t.name}" + (f" ({reading.template_description})"
                                          if reading.template_description else "")
                 if t else "Template: not recognised")
    lines.append(f"Image: {reading.result.width}x{reading.result.height} pixels, "
                 f"{len(reading.regions)} text region(s).")
    if reading.regions:
        lines.append("Text by region:")
        lines += [f'- {r.box_name or r.position}: "{r.text}"' for r in reading.regions]
    else:
        lines.append("Text: none was found.")
    lines.append(f"Picture: {vision.description}" if vision.description
                 else "Picture: not described (no vision model).")
    lines.append("Explain the meme in four short parts: 1. What it says. 2. The format. "
                 "3. The joke. 4. Any references (say 'none obvious' if none).")
    return "\n".join(lines)


async def start_explanation(pipeline: ChatPipeline, reading: Reading, vision: Vision, *,
                            model: str | None = None, max_tokens: int = 400,
                            temperature: float = 0.3, seed: int | None = None,
                            client: str | None = None) -> ChatStream:
    """Queue the chat model's explanation of ``reading``: a :class:`ChatStream`.

    Raises:
        Whatever :meth:`ChatPipeline.start_chat` raises (ModelNotFound, Overloaded, ...).
    """
    messages = [ChatMessage("system", SYSTEM), ChatMessage("user", prompt(reading, vision))]
    params = SamplingParams(max_tokens=max_tokens, temperature=temperature, seed=seed)
    return await pipeline.start_chat(ChatRequest(
        messages, params, model, frozenset({"max_tokens", "temperature", "seed"}),
        client=client))
