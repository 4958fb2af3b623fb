"""The integration's words are defined once: every outcome and run state has its text, and the page's nickname
preview follows the rule the service applies when it creates a group."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from equa.microsoft import vocabulary
from equa.microsoft.groups import derive_mail_nickname
from equa.microsoft.models import Outcome, RunStatus
from equa.microsoft.schemas import Health

STATIC = Path(vocabulary.__file__).resolve().parents[1] / "web" / "static"


def test_every_outcome_and_run_state_has_its_words_in_one_order() -> None:
    assert set(vocabulary.OUTCOME_ORDER) == {outcome.value for outcome in Outcome}
    assert len(vocabulary.OUTCOME_ORDER) == len(set(vocabulary.OUTCOME_ORDER))
    for outcome in Outcome:
        assert vocabulary.outcome_text(outcome.value, preview=False) != outcome.value
    assert vocabulary.outcome_text("added", preview=True) == "Would be added to the group"
    assert {state.value for state in RunStatus} <= set(vocabulary.RUN_TEXT)
    assert vocabulary.run_text("abandoned") == "Interrupted"


def test_every_health_the_api_can_answer_has_its_own_sentence() -> None:
    problems = [health for health in get_args(Health) if health != "ok"]
    assert set(problems) == set(vocabulary.HEALTH_TEXT), (
        "the status card and the API name the same health states"
    )
    sentences = [vocabulary.health_text(health) for health in problems]
    assert vocabulary.HEALTH_FALLBACK not in sentences
    assert len(set(sentences)) == len(sentences)


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
