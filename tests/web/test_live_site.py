"""The whole web app in chromium against `cove serve` with the bundled model: sign up, chat with
streaming, rename and delete a conversation, export, delete the account."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import free_port, start_server, stop_server
from tests.web.helpers import PASSWORD

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def live_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("cove-web-home")
    port = free_port()
    proc = start_server(home, port, COVE_N_CTX="256")
    yield f"http://127.0.0.1:{port}", home
    stop_server(proc)


def count(home: Path, table: str) -> int:
    with sqlite3.connect(home / "cove.db") as db:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_sign_up_chat_rename_delete_export_delete_account(
    browser: Any, live_site: tuple[str, Path], tmp_path: Path
) -> None:
    base, home = live_site
    context = browser.new_context(base_url=base, accept_downloads=True, bypass_csp=True)
    page = context.new_page()
    offsite: list[str] = []
    page.on("request", lambda r: r.url.startswith(base) or offsite.append(r.url))
    page.goto("/")
    page.wait_for_selector("body[data-ready='1']")
    assert page.locator("#model").input_value() == "smollm2:135m"

    page.click("#open-auth")
    page.fill("#auth-email", "grace@example.org")
    page.fill("#auth-password", PASSWORD)
    page.click("#signup")
    page.wait_for_selector("#open-settings:not([hidden])")
    assert page.locator("#who").inner_text() == "grace@example.org"

    # record every length the answer text takes while it streams in
    page.evaluate("""() => {
        window.__lengths = [];
        new MutationObserver(() => {
            const b = document.querySelector('.msg.assistant .body');
            const busy = !document.getElementById('stop').hidden;
            if (b && busy) window.__lengths.push(b.innerText.length);
        }).observe(document.getElementById('messages'), {subtree: true, childList: true,
                                                        characterData: true});
    }""")
    question = "What is the capital of France? Answer in one short sentence."
    page.fill("#input", question)
    page.click("#send")
    page.wait_for_selector("#send:not([hidden])", timeout=240_000)
    lengths = [n for n in page.evaluate("window.__lengths") if n > 0]
    assert len(set(lengths)) >= 2, lengths  # the answer grew on the page: it streamed
    answer = page.locator(".msg.assistant .body").inner_text()
    assert len(answer.strip()) > 3
    assert page.locator(".msg.assistant .role").inner_text() == "smollm2:135m"
    assert count(home, "messages") == 2

    expect(page.locator(".conv .title")).to_have_text([question[:60]])
    page.once("dialog", lambda d: d.accept("Capital question"))
    page.locator(".conv .rename").first.click()
    expect(page.locator(".conv .title")).to_have_text(["Capital question"])

    page.click("#open-settings")
    with page.expect_download() as dl:
        page.click("#export")
    path = tmp_path / "export.json"
    dl.value.save_as(path)
    data = json.loads(path.read_text())
    assert data["account"]["email"] == "grace@example.org"
    conv = data["conversations"][0]
    assert conv["title"] == "Capital question"
    assert [m["role"] for m in conv["messages"]] == ["user", "assistant"]
    assert conv["messages"][1]["content"].strip() == answer.strip()
    page.click("#settings-close")

    page.once("dialog", lambda d: d.accept())
    page.locator(".conv .delete").first.click()
    expect(page.locator(".conv")).to_have_count(0)
    assert count(home, "conversations") == 0 and count(home, "messages") == 0

    page.click("#open-settings")
    page.fill("#delete-password", PASSWORD)
    page.once("dialog", lambda d: d.accept())
    page.click("#delete-account")
    page.wait_for_selector("#open-auth:not([hidden])")
    assert count(home, "users") == 0 and count(home, "sessions") == 0
    assert offsite == []
    context.close()
