"""The integration's words are defined once: every outcome and run state has its text, and the page's nickname
preview follows the rule the service applies when it creates a group."""

from __future__ import annotations

from pathlib import Path

from equa.microsoft import vocabulary
from equa.microsoft.groups import derive_mail_nickname
from equa.microsoft.models import Outcome, RunStatus

STATIC = Path(vocabulary.__file__).resolve().parents[1] / "web" / "static"


def test_every_outcome_and_run_state_has_its_words_in_one_order() -> None:
    assert set(vocabulary.OUTCOME_ORDER) == {outcome.value for outcome in Outcome}
    assert len(vocabulary.OUTCOME_ORDER) == len(set(vocabulary.OUTCOME_ORDER))
    for outcome in Outcome:
        assert vocabulary.outcome_text(outcome.value, preview=False) != outcome.value
    assert vocabulary.outcome_text("added", preview=True) == "Would be added to the group"
    assert {state.value for state in RunStatus} <= set(vocabulary.RUN_TEXT)
    assert vocabulary.run_text("abandoned") == "Interrupted"


def test_the_nickname_preview_is_the_services_own_rule() -> None:
    for name in ("Northwind Board", "Équipe  Finance -- 2026", "Ω only", "  "):
        preview = vocabulary.nickname_preview(name, "")
        if name.strip():
            assert preview.startswith(f"Mail nickname: {derive_mail_nickname(name)} (from the name")
        else:
            assert preview == ""
    assert vocabulary.nickname_preview("Northwind Board", " board ") == "Mail nickname: board"


def test_hand_written_javascript_stays_small() -> None:
    written = [path for path in STATIC.rglob("*.js") if "vendor" not in path.relative_to(STATIC).parts]
    lines = sum(len(path.read_text().splitlines()) for path in written)
    assert written and lines < 200, f"{lines} lines of hand-written JavaScript under web/static"
