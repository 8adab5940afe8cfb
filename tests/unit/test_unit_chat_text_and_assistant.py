"""Chat text rules at their edges, and the automated assistant's answers: labelled, cited, never a guess."""

from __future__ import annotations

import pytest

from cardiogate.cloud.care import assistant
from cardiogate.cloud.care.chat_text import ChatTextError, clean_message, clean_title

pytestmark = pytest.mark.care


def test_messages_are_kept_as_written_within_the_limit() -> None:
    assert clean_message("<script>alert(1)</script>", 100) == "<script>alert(1)</script>"  # text, not HTML
    assert clean_message("a\r\nb\tc", 100) == "a\nb\tc"
    assert clean_message("e\u0301", 100) == "\u00e9"  # NFC
    assert clean_message("x" * 10, 10) == "x" * 10
    with pytest.raises(ChatTextError, match="11 characters"):
        clean_message("x" * 11, 10)


@pytest.mark.parametrize("bad", ["", " \n ", "a\x00b", "a\x1bb", "a\x7fb", "rtl \u202e", "\ud800"])
def test_control_characters_overrides_and_invalid_text_are_refused(bad: str) -> None:
    with pytest.raises(ChatTextError):
        clean_message(bad, 100)


def test_titles_are_one_line() -> None:
    assert clean_title(None) == "" and clean_title("  ") == "" and clean_title(" VT at 03:10 ") == "VT at 03:10"
    with pytest.raises(ChatTextError):
        clean_title("two\nlines")


FACTS = assistant.PatientFacts(
    patient="pt-1",
    vitals=(assistant.Vital("heart_rate_bpm", 128.0, 10), assistant.Vital("spo2_percent", 91.0, 10)),
    alarms=(assistant.AlarmFact("a1", "hr_high", "medium", "active", 128.0, 5),),
    risk=assistant.RiskFact(0.62, "medium", 5, "news2-baseline 1.0.0", True, (("news2", "NEWS2 subtotal 5"),), 9),
    trends=(assistant.TrendFact("1 h", 92.0, 128.0, 90.0, 0.25, 12, 9),))


def test_a_summary_cites_every_number_it_gives_and_says_it_is_automated() -> None:
    reply = assistant.answer("Give me a summary please", FACTS)
    assert reply.text.startswith(assistant.LABEL)
    assert "Heart rate 128 bpm" in reply.text and "rising (92 -> 128 bpm" in reply.text
    assert "SpO2 91 %" in reply.text and "medium hr_high (active)" in reply.text
    assert "news2-baseline 1.0.0, the transparent rule baseline" in reply.text
    kinds = [c.kind for c in reply.citations]
    assert {"vitals", "window", "alarm", "risk"} <= set(kinds)
    assert "Check the monitor" in reply.text.splitlines()[-1]


def test_specific_questions_answer_only_what_was_asked() -> None:
    rhythm = assistant.answer("any AF?", FACTS)
    assert "AF burden over the last 1 h: 25 %" in rhythm.text and {c.kind for c in rhythm.citations} == {"window"}
    bp = assistant.answer("blood pressure?", FACTS)
    assert "No blood pressure on record." in bp.text and bp.citations == ()
    assert "There is no data on record for that yet." in bp.text


def test_an_unrecognised_question_gets_the_menu_and_no_citation() -> None:
    reply = assistant.answer("what's for lunch?", FACTS)
    assert "I can answer about" in reply.text and reply.citations == ()
    empty = assistant.answer("alarms?", assistant.PatientFacts("pt-2"))
    assert "No alarms are on record" in empty.text
