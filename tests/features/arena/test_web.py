"""The Arena page in chromium over two scripted models: a blind battle streams both answers
side by side, the vote reveals the names and updates the leaderboard."""

from __future__ import annotations

from typing import Any

from tests.features.responder import answer_by_prompt
from tests.web.conftest import Site, browser, page, site  # noqa: F401


def test_blind_battle_and_vote(page: Any, site: Site) -> None:  # noqa: F811
    answer_by_prompt(site.engines["scripted:latest"], lambda p: "Answer one <b>bold</b>.")
    answer_by_prompt(site.engines["thinker:latest"], lambda p: "</think>Answer two.",
                     mark="<|assistant|><think>\n")
    page.goto("/arena")
    page.wait_for_selector("body[data-ready='1']")
    pickers = page.locator(".contestant")
    pickers.nth(0).select_option("scripted:latest")
    pickers.nth(1).select_option("thinker:latest")
    page.fill("#prompt", "Say hello.")
    page.click("#go")
    page.wait_for_selector("#votes:not([hidden])")
    boxes = page.locator(".answer")
    assert boxes.count() == 2
    assert [boxes.nth(k).locator("h3").inner_text() for k in range(2)] == ["A", "B"]
    texts = sorted(boxes.nth(k).locator(".text").inner_text() for k in range(2))
    assert texts == ["Answer one <b>bold</b>.", "Answer two."]
    winner = next(k for k in range(2)
                  if boxes.nth(k).locator(".text").inner_text().startswith("Answer one"))
    page.locator("#votes button").nth(winner).click()
    page.wait_for_selector("#verdict:has-text('was')")
    heads = [boxes.nth(k).locator("h3").inner_text() for k in range(2)]
    assert heads[winner].endswith("scripted:latest")
    page.wait_for_selector("#leaderboard tbody tr")
    rows = page.locator("#leaderboard tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).locator("td").nth(0).inner_text() == "scripted:latest"
    assert "1 votes" in page.inner_text("#board-note")
