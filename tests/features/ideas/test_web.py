"""The Ideas page in chromium over a scripted model: a brainstorm shows ranked ideas grouped
into themes (model text as text, never markup), a follow-up, and a signed-in user's board."""

from __future__ import annotations

from typing import Any

from tests.features.ideas.conftest import Brain
from tests.features.responder import answer_by_prompt
from tests.web.conftest import Site, browser, page, site  # noqa: F401
from tests.web.test_browser import sign_up

XSS = '<img src=x onerror="window.__xss=1">'
# short, so that three fit the page's default max_tokens in the fake's one-byte tokens
BIKES = [("Bike repair", "Fix bikes."), ("Bike bonus", "Pay cyclists."),
         ("Bike lanes", "Paint lanes.")]
GARDENS = [("Roof gardens", "Grow food up top."), ("School gardens", "Kids grow food."),
           ("Garden seeds", "Swap seeds.")]


def script(site: Site) -> Brain:  # noqa: F811
    brain = Brain()
    brain.ideas = lambda p: [(BIKES[0][0] + " " + XSS, BIKES[0][1]), *BIKES[1:]] \
        if "concrete" in p else GARDENS
    scores = {BIKES[1][0]: 9, GARDENS[0][0]: 8}
    brain.score = lambda title: scores.get(title, 3)
    answer_by_prompt(site.engines["scripted:latest"], brain)
    return brain


def brainstorm(page: Any, n: int) -> None:  # noqa: F811
    page.goto("/ideas")
    page.wait_for_selector("body[data-ready='1']")
    page.fill("#goal", "Make our town greener")
    page.fill("#n", str(n))
    page.click("#go")
    page.wait_for_selector(".theme .idea")
    page.wait_for_selector("#go:not([hidden])")


def test_brainstorm_shows_ranked_grouped_ideas(page: Any, site: Site) -> None:  # noqa: F811
    script(site)
    brainstorm(page, 6)
    themes = page.locator(".theme")
    assert themes.count() == 2
    names = [themes.nth(k).locator("h2").inner_text() for k in range(2)]
    assert any("Bike" in n for n in names)
    # the theme with the best idea first, its ideas by rank; the best is ranked #1
    first = themes.nth(0).locator(".idea")
    assert first.nth(0).locator(".title").inner_text() == BIKES[1][0]
    assert first.nth(0).locator(".rank").inner_text() == "#1"
    assert first.nth(0).locator(".score").inner_text() == "9.0"
    ranks = [int(r[1:]) for r in page.locator(".idea .rank").all_inner_texts()]
    assert sorted(ranks) == list(range(1, 7))
    assert "6 ideas in 2 themes" in page.inner_text("#progress")
    assert XSS in page.inner_text("#results")  # shown as text
    assert page.evaluate("window.__xss") is None
    assert page.locator("#markdown").is_hidden()  # a guest: no board
    # a follow-up
    site.engines["scripted:latest"].oracle = None
    site.engines["scripted:latest"].enqueue([
        '{"title": "Plan", "summary": "Start small.", "steps": ["a", "b", "c"], '
        '"first_step": "Call the council."}'])
    first.nth(0).get_by_text("Expand").click()
    page.wait_for_selector(".followup strong")
    assert "First step: Call the council." in page.inner_text(".followup")


def test_signed_in_board_is_saved(page: Any, site: Site) -> None:  # noqa: F811
    script(site)
    sign_up(page)
    brainstorm(page, 3)
    page.wait_for_selector("#boards li")
    assert "Make our town greener (3)" in page.inner_text("#boards")
    href = page.get_attribute("#markdown", "href")
    assert href and href.endswith("/markdown")
    assert page.locator("#markdown").is_visible()
