"""Recursive splitting: sizes, overlap, ranges, boundaries."""

from __future__ import annotations

import pytest

from cove.features.search.chunking import split


def test_short_text_is_one_stripped_chunk() -> None:
    assert split("  hello world \n") == [(2, 13)]
    assert split("   \n\n ") == []


def test_paragraphs_are_cut_before_lines_and_sentences() -> None:
    para = "word " * 150  # 750 characters
    text = para.strip() + "\n\n" + para.strip() + "\n\n" + para.strip()
    chunks = split(text, size=1000, overlap=0)
    assert [text[a:b] for a, b in chunks] == [para.strip()] * 3


def test_every_chunk_fits_covers_the_text_and_overlaps() -> None:
    sentences = [f"Sentence number {i} says something about topic {i % 7}." for i in range(200)]
    text = " ".join(sentences)
    chunks = split(text, size=300, overlap=60)
    assert all(b - a <= 300 for a, b in chunks)
    assert chunks[0][0] == 0 and chunks[-1][1] == len(text)
    for (_, end), (start, _) in zip(chunks, chunks[1:], strict=False):
        assert start < end, "consecutive chunks overlap"
        assert end - start <= 60
    for a, b in chunks:  # cut at sentence ends, not mid-word
        assert text[a:b].startswith("Sentence") and text[a:b].endswith(".")


def test_a_word_longer_than_the_size_is_cut_anywhere() -> None:
    text = "x" * 2500
    assert split(text, size=1000, overlap=100) == [(0, 1000), (1000, 2000), (2000, 2500)]


def test_overlap_must_be_smaller_than_size() -> None:
    with pytest.raises(ValueError):
        split("text", size=10, overlap=10)
