"""The logic-mode toggle of the web app in a real browser over a scripted model: the vote, the
samples and their tool calls are shown, model text stays sanitised, nothing is stored."""

from __future__ import annotations

from typing import Any

from cove.store.tables import Message
from tests.web.conftest import Site
from tests.web.test_browser import assert_nothing_ran, send, sign_up


def script(site: Site, answers: list[str]) -> None:
    engine = site.engines["scripted:latest"]
    for a in answers:
        engine.enqueue(["So it is:\n", f"Answer: {a}"])


def test_logic_toggle_shows_vote_and_samples(page: Any, site: Site) -> None:
    script(site, ["42", "42", "41", "42", '42 <img src=x onerror="window.__xss=1">'])
    page.check("#logic")
    msg = send(page, "What is 6 times 7?")
    text = msg.inner_text()
    assert "Answer: 42 (agreement 4/5)" in text
    assert "Sample 3 (seed" in text and "): 41" in text
    assert "not saved" in msg.locator(".status").inner_text()
    assert page.locator("#error").is_hidden()
    assert_nothing_ran(page)
    # the toggle off: a plain chat answer again
    page.uncheck("#logic")
    site.engines["scripted:latest"].enqueue(["plain"])
    assert send(page, "hi").locator(".body").inner_text().strip() == "plain"


def test_logic_toggle_signed_in(page: Any, site: Site) -> None:
    sign_up(page)
    script(site, ["12", "12", "12", "12", "12"])
    page.check("#logic")
    msg = send(page, "What is 3 times 4?")
    assert "Answer: 12 (agreement 5/5)" in msg.inner_text()
    assert site.rows(Message) == 0  # logic answers are not stored
    page.uncheck("#logic")
    site.engines["scripted:latest"].enqueue(["stored"])
    send(page, "hi")
    assert site.rows(Message) == 2  # the plain chat still saves as before
