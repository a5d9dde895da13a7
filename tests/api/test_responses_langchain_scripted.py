"""LangChain's ChatOpenAI in Responses mode over the scripted reasoning model (no bundled model
reasons): reasoning items parsed whole and streamed, and replayed without reaching the prompt."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI

from tests.api.test_responses_scripted import thinker  # noqa: F401 - the fixture
from tests.conftest import FakeWorld


def test_langchain_reads_and_replays_reasoning(thinker: FakeWorld) -> None:  # noqa: F811
    llm = ChatOpenAI(model="thinker", base_url="http://localhost/v1", api_key="unused",
                     use_responses_api=True, http_client=thinker.client, max_retries=0,
                     reasoning={"effort": "low", "summary": "auto"})
    thinker.engine.enqueue(["<think>", "ponder", "ing", "</think>", "Answer"])
    msg = llm.invoke("q")
    blocks: list[Any] = msg.content  # type: ignore[assignment]
    assert blocks[0]["type"] == "reasoning"
    assert blocks[0]["summary"][0]["text"] == "pondering"
    assert msg.text == "Answer"
    thinker.engine.enqueue(["<think>", "ponder", "ing", "</think>", "Ans", "wer"])
    full: Any = None
    for chunk in llm.stream("q"):
        full = chunk if full is None else full + chunk
    assert full.text == "Answer"
    assert [b["summary"][0]["text"] for b in full.content if b["type"] == "reasoning"] == [
        "pondering"]
    thinker.engine.enqueue(["</think>fine"])
    follow = llm.invoke([HumanMessage("q"), msg, HumanMessage("more")])
    assert follow.text == "fine"
    text = bytes(thinker.engine.history[-1][0]).decode()
    assert "Answer" in text and "more" in text and "pondering" not in text
