"""bench/ideas.py's reading of plain answers (what the diversity figures count)."""

from bench.ideas import plain_ideas


def test_plain_items_keep_their_continuation_lines() -> None:
    text = ("Here are some ideas:\n1. **Tree planting** day\nNeighbours plant trees together.\n\n"
            "2. Bike lanes\n- Repair cafe\nok\n\nThanks!\n3. ab")
    assert plain_ideas(text) == ["Tree planting day Neighbours plant trees together.",
                                 "Bike lanes", "Repair cafe ok"]


def test_text_without_a_list_has_no_items() -> None:
    assert plain_ideas("Once upon a time a town went green.") == []
