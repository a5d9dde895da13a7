"""The web app in a real browser (Debian's chromium via Playwright) over scripted models:
XSS payloads in user text and in model output run nothing and show as text; thinking block,
markdown, code highlighting and maths; stop; regenerate and edit; guest chat stores nothing;
phone-width layout."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from cove.store.tables import Conversation, Message, User
from tests.web.conftest import Site
from tests.web.helpers import PASSWORD

XSS_USER = ('<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
            '<svg onload="window.__xss=3"></svg>')
XSS_MODEL = [
    "Look: ", '<img src=x onerror="window.__xss=11">', " and ",
    "<script>window.__xss=12</script>", "\n\n", "[click me](javascript:window.__xss=13)",
    " ", '<a href="javascript:window.__xss=14">raw link</a>', "\n\n",
    '<iframe srcdoc="<script>parent.__xss=15</script>"></iframe>', "\n\n",
    "$\\href{javascript:window.__xss=16}{math link}$", "\n\n",
    '<details open ontoggle="window.__xss=17">d</details>', " end.",
]


def sign_up(page: Any, email: str = "ada@example.org") -> None:
    page.click("#open-auth")
    page.fill("#auth-email", email)
    page.fill("#auth-password", PASSWORD)
    page.click("#signup")
    page.wait_for_selector("#open-settings:not([hidden])")


def send(page: Any, text: str) -> Any:
    page.fill("#input", text)
    page.click("#send")
    page.wait_for_selector("#send:not([hidden])")  # answer finished
    return page.locator(".msg.assistant").last


def assert_nothing_ran(page: Any) -> None:
    assert page.evaluate("window.__xss") is None
    bad = page.evaluate("""() => {
        const out = [];
        for (const el of document.querySelectorAll('#messages *')) {
            for (const a of el.attributes) {
                if (a.name.startsWith('on')) out.push(el.tagName + ' ' + a.name);
                if (/^\\s*javascript:/i.test(a.value)) out.push(el.tagName + ' ' + a.name);
            }
            if (['SCRIPT', 'IFRAME', 'OBJECT', 'EMBED'].includes(el.tagName)) out.push(el.tagName);
        }
        return out;
    }""")
    assert bad == []


def test_xss_in_user_text_and_model_output_runs_nothing(page: Any, site: Site) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_up(page)
    site.engines["scripted:latest"].enqueue(XSS_MODEL)
    answer = send(page, XSS_USER)
    user = page.locator(".msg.user").last
    assert user.locator(".body").inner_text() == XSS_USER  # shown as text, verbatim
    shown = answer.locator(".body").inner_text()
    assert '<img src=x onerror="window.__xss=11">' in shown  # raw HTML shows as text
    assert "<script>window.__xss=12</script>" in shown and "end." in shown
    assert_nothing_ran(page)
    page.locator(".msg.assistant .body a", has_text="click me").click()
    page.wait_for_timeout(200)
    assert_nothing_ran(page)
    # the same conversation reloaded from the store
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    page.locator(".conv .title").first.click()
    page.wait_for_selector(".msg.assistant")
    assert page.locator(".msg.user .body").inner_text() == XSS_USER
    assert_nothing_ran(page)
    assert dialogs == []


def test_pages_send_a_strict_content_security_policy(page: Any, site: Site) -> None:
    import httpx

    csp = httpx.get(site.base_url + "/", headers={"Accept": "text/html"}
                    ).headers["content-security-policy"]
    assert "script-src 'self'" in csp and "object-src 'none'" in csp
    script_src = csp.split("script-src")[1].split(";")[0]
    assert "unsafe-eval" not in csp and "unsafe-inline" not in script_src


def test_thinking_markdown_code_and_maths(page: Any, site: Site) -> None:
    sign_up(page)
    page.select_option("#model", "thinker:latest")
    site.engines["thinker:latest"].enqueue([
        "Adding ", "**two** and two.", "</think>", "The answer is **4**.\n\n",
        "```python\nprint(2 + 2)\n```\n\n", "Also $e^{i\\pi} + 1 = 0$.\n\n$$\\int_0^1 x\\,dx$$",
    ])
    answer = send(page, "What is 2+2?")
    think = answer.locator("details.thinking")
    assert think.is_visible()
    assert think.locator("summary").inner_text() == "Thinking"
    assert think.get_attribute("open") is None  # collapsed once the answer came
    think.locator("summary").click()
    assert "Adding two and two." in think.locator(".reasoning").inner_text()
    assert answer.locator(".body strong").inner_text() == "4"
    assert answer.locator(".body pre code.language-python .hljs-built_in").inner_text() == "print"
    assert answer.locator(".body .katex").count() >= 1
    assert answer.locator(".body .katex-display").count() == 1
    assert answer.locator(".role").inner_text() == "thinker:latest"
    # the copy buttons put the raw text on the clipboard
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    answer.locator(".actions .copy").click()
    assert page.evaluate("navigator.clipboard.readText()").startswith("The answer is **4**.")


def test_stop_keeps_the_partial_answer(page: Any, site: Site) -> None:
    sign_up(page)
    engine = site.engines["scripted:latest"]
    engine.delay = 0.05
    engine.enqueue([f"word{i} " for i in range(400)])
    page.fill("#input", "Talk for a long time")
    page.click("#send")
    page.wait_for_function(
        "document.querySelector('.msg.assistant .body').innerText.includes('word5')")
    page.click("#stop")
    page.wait_for_selector("#send:not([hidden])")
    assert page.locator(".msg.assistant .status").inner_text() == "Answer stopped."
    page.wait_for_timeout(300)
    with site.app.state.db.session() as s:
        from sqlalchemy import select

        m = s.scalars(select(Message).where(Message.role == "assistant")).one()
        assert m.status == "stopped" and m.content.startswith("word0 word1 ")
        assert "word399" not in m.content


def test_conversation_list_regenerate_and_edit(page: Any, site: Site) -> None:
    sign_up(page)
    engine = site.engines["scripted:latest"]
    engine.enqueue(["first answer"])
    send(page, "Tell me about otters")
    expect(page.locator(".conv .title")).to_have_text(["Tell me about otters"])
    engine.enqueue(["second answer"])
    page.locator(".msg.assistant .regenerate").click()
    page.wait_for_selector("#send:not([hidden])")
    assert page.locator(".msg.assistant .body").inner_text() == "second answer"
    engine.enqueue(["edited answer"])
    page.locator(".msg.user .edit").click()
    page.fill(".edit-area", "Tell me about beavers")
    page.click(".save-edit")
    page.wait_for_selector("#send:not([hidden])")
    assert page.locator(".msg.user .body").inner_text() == "Tell me about beavers"
    assert page.locator(".msg.assistant .body").inner_text() == "edited answer"
    assert site.rows(Message) == 2
    # a second conversation; search by title
    page.click("#new-chat")
    engine.enqueue(["ok"])
    send(page, "Bread recipes")
    expect(page.locator(".conv")).to_have_count(2)
    page.fill("#search", "bread")
    expect(page.locator(".conv .title")).to_have_text(["Bread recipes"])


def test_guest_chat_stays_in_the_tab(page: Any, site: Site) -> None:
    assert page.locator("#guest-banner").is_visible()
    assert "only in this browser tab" in page.locator("#guest-banner").inner_text()
    site.engines["scripted:latest"].enqueue(["Hello ", "guest!"])
    answer = send(page, "guest secret question")
    assert answer.locator(".body").inner_text() == "Hello guest!"
    site.engines["scripted:latest"].enqueue(["Second."])
    send(page, "and again")
    prompt = bytes(site.engines["scripted:latest"].history[-1][0]).decode()
    assert "guest secret question" in prompt and "Hello guest!" in prompt  # history from the tab
    assert (site.rows(User), site.rows(Conversation), site.rows(Message)) == (0, 0, 0)
    home = site.app.state.settings.home
    stored = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
    assert b"guest secret question" not in stored
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    assert page.locator(".msg").count() == 0


def test_signing_in_says_the_guest_chat_is_not_carried_over(page: Any, site: Site) -> None:
    """A new user read "Sign in to keep conversations" as keeping this one; signing in starts
    a new conversation, and the banner and the sign-in dialog now say so."""
    assert "so does signing in" in page.locator("#guest-banner").inner_text()
    page.click("#open-auth")
    assert not page.locator("#auth-carry").is_visible()  # nothing on screen to lose
    page.click("#auth-close")
    site.engines["scripted:latest"].enqueue(["Hi."])
    send(page, "guest question")
    page.click("#open-auth")
    assert "not carried over" in page.locator("#auth-carry").inner_text()
    assert page.locator("#auth-carry").is_visible()


def test_phone_width_layout(browser: Any, site: Site) -> None:
    context = browser.new_context(base_url=site.base_url, viewport={"width": 390, "height": 844},
                                  is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto("/")
    page.wait_for_selector("body[data-ready='1']")
    assert page.locator("#input").is_visible() and page.locator("#send").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    box = page.locator("#sidebar").bounding_box()
    assert box is not None and box["x"] + box["width"] <= 1  # off screen
    page.click("#toggle-sidebar")
    page.wait_for_timeout(300)
    box = page.locator("#sidebar").bounding_box()
    assert box is not None and box["x"] >= 0
    page.keyboard.press("Escape")  # the open sidebar's backdrop covers the page
    page.click("#theme")
    assert page.evaluate("document.documentElement.dataset.theme") in ("dark", "light")
    context.close()
