"""The real path: ``cove serve`` with the bundled model, a PDF uploaded over HTTP, and the
official ``openai`` client asking with ``cove.search``: the answer comes from the passage and
the source listed is the right document and page."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.conftest import free_port, start_server, stop_server
from tests.features.search.files import make_pdf

pytestmark = pytest.mark.real_model

PAGES = ["Opening hours of the Harbour Museum: daily from ten to five.",
         "The museum's lighthouse keeper is named Ingrid Solberg. She has kept the light "
         "since 1998.",
         "Tickets cost twelve euros; children enter free."]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("search-home")
    port = free_port()
    proc = start_server(home, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(proc)


def test_bundled_model_answers_from_the_passage_with_its_source(server: str) -> None:
    web = httpx.Client(base_url=server, timeout=60)
    r = web.post("/web/signup", json={"email": "reader@example.org",
                                      "password": "correct horse battery"})
    assert r.status_code == 200, r.text
    csrf = {"X-CSRF-Token": r.json()["csrf"]}
    key = web.post("/web/keys", json={"name": "test"}, headers=csrf).json()["key"]
    cid = web.post("/web/knowledge/collections", json={"name": "museum"},
                   headers=csrf).json()["id"]
    up = web.post(f"/web/knowledge/collections/{cid}/documents", headers=csrf,
                  files={"file": ("museum.pdf", make_pdf(PAGES))})
    assert up.status_code == 201, up.text

    client = openai.OpenAI(base_url=server + "/v1", api_key=key, max_retries=0)
    reply = client.chat.completions.create(
        model="smollm2:135m", temperature=0, max_tokens=40,
        messages=[{"role": "user", "content": "What is the name of the lighthouse keeper?"}],
        extra_body={"cove": {"search": {"collections": ["museum"], "limit": 2}}})
    sources = reply.model_extra["cove"]["search"]["sources"]  # type: ignore[index]
    assert (sources[0]["document"], sources[0]["page"]) == ("museum.pdf", 2)
    assert "Ingrid Solberg" in sources[0]["snippet"]
    assert "Ingrid" in (reply.choices[0].message.content or "")
