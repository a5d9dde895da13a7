"""Duplicates, themes and answers read back: exact cases over the core embedder."""

from __future__ import annotations

import numpy as np

from cove.embeddings import embed
from cove.features.ideas.cluster import Deduper, agglomerate, text_ratio, theme_name
from cove.features.ideas.prompts import idea_schema, read_ideas, read_scores, rubric_schema
from cove.structured import check_schema


def test_text_ratio() -> None:
    assert text_ratio("Bike lanes!", "bike  lanes") == 1.0
    assert text_ratio("", "") == 1.0 and text_ratio("a", "") == 0.0
    assert text_ratio("Solar roofs", "Reading buddies") < 0.5


def test_deduper_keeps_the_first_of_near_repeats() -> None:
    texts = ["Repair cafe. Volunteers fix broken appliances for free every month.",
             "Fix-it cafe. Volunteers repair broken household appliances at a free monthly "
             "meetup.",
             "Rooftop gardens. Grow vegetables on flat office roofs.",
             "Rooftop gardens. Grow vegetables on flat office roofs!"]
    d = Deduper()
    got = [d.add(t, v) for t, v in zip(texts, embed(texts), strict=True)]
    assert got == [None, 0, None, 2]
    assert d.kept == [0, 2]


def test_agglomerate_groups_by_meaning_and_caps_the_count() -> None:
    texts = ["Bike lanes on every street", "Free bicycle repair classes",
             "Cycling to work bonus for bikes", "Vegetable gardens on roofs",
             "School vegetable garden plots", "Seed swap for gardeners"]
    v = embed(texts)
    # related ideas sit at cosine 0.28-0.54 here, unrelated ones at 0.00-0.14
    assert agglomerate(v) == [0, 0, 0, 1, 1, 2]  # the seed swap is only 0.14-0.28 close
    assert agglomerate(v, max_groups=2) == [0, 0, 0, 1, 1, 1]
    assert agglomerate(v, max_groups=1) == [0] * 6
    assert agglomerate(v, threshold=0.0) == list(range(6))
    assert agglomerate(np.zeros((0, 256), dtype=np.float32)) == []


def test_theme_names_are_distinctive_words() -> None:
    bikes = ["Bike lanes on every street", "Bike repair classes"]
    gardens = ["Vegetable gardens on roofs", "School gardens"]
    assert theme_name(bikes, [gardens]).startswith("Bike")
    assert "Gardens" in theme_name(gardens, [bikes])
    assert theme_name(["the and of"], []) == "Other"


def test_read_ideas_whole_cut_short_and_junk() -> None:
    whole = '{"ideas": [{"title": "A  b", "pitch": "p p", "why": "w"}]}'
    assert read_ideas(whole) == [{"title": "A b", "pitch": "p p", "why": "w"}]
    cut = ('{"ideas": [{"title": "One", "pitch": "First.", "why": "w"}, '
           '{"title": "Two", "pitch": "Second.", "why": "w"}, {"title": "Thr')
    assert [i["title"] for i in read_ideas(cut)] == ["One", "Two"]
    assert read_ideas("not json") == [] and read_ideas('{"ideas": 3}') == []
    assert read_ideas('{"ideas": [{"title": "x", "pitch": "too short title"}]}') == []
    long = read_ideas('{"ideas": [{"title": "%s", "pitch": "ok!"}]}' % ("t" * 500))
    assert len(long[0]["title"]) == 100


def test_read_scores() -> None:
    assert read_scores('{"c1": 7, "c2": 12}', 2) == [7.0, 10.0]
    assert read_scores('{"c1": 7}', 2) is None and read_scores("{", 1) is None


def test_schemas_use_only_enforced_keywords() -> None:
    check_schema(idea_schema())
    check_schema(rubric_schema(3))
