"""The words the integration shows people: health, run states, outcomes (in one order) and the nickname preview.

Defined once here; the settings page's templates and the CLI both read them, so they cannot disagree.
"""

from __future__ import annotations

from equa.microsoft.groups import derive_mail_nickname
from equa.microsoft.models import Outcome

# A status whose health is not "ok" is explained with one of these sentences (its action says what to do).
HEALTH_TEXT = {
    "group_missing": "The group was deleted in Microsoft 365.",
    "permission_missing": "The app is missing its Microsoft Graph permissions (admin consent).",
    "out_of_scope": "The linked group is outside the groups this organization may use.",
    "auth_failed": "This service could not sign in to Microsoft 365.",
    "unreachable": "Microsoft 365 could not be reached.",
}
HEALTH_FALLBACK = "Microsoft 365 reported a problem."

RUN_TEXT = {
    "queued": "Queued",
    "running": "Running",
    "succeeded": "Succeeded",
    "partial": "Partly done",
    "failed": "Failed",
    "abandoned": "Interrupted",
    "cancelled": "Stopped (group unlinked)",
}
ACTIVE_RUN_STATES = frozenset({"queued", "running"})

# Outcomes in the order every listing uses (the CLI's table and the page's result): what changed first.
OUTCOME_ORDER: tuple[str, ...] = tuple(outcome.value for outcome in Outcome)

# outcome -> (text after a sync, text in a preview)
OUTCOME_TEXT: dict[str, tuple[str, str]] = {
    Outcome.ADDED: ("Added to the group", "Would be added to the group"),
    Outcome.ALREADY_MEMBER: ("Already members", "Already members"),
    Outcome.REMOVED: ("Removed from the group", "Would be removed from the group"),
    Outcome.EXCLUDED: (
        "Not added back: an admin removed them from the group",
        "Would not be added back: an admin removed them from the group",
    ),
    Outcome.FLAGGED: (
        "Flagged: in the group, not in the Equa team",
        "Would be flagged: in the group, not in the Equa team",
    ),
    Outcome.NOT_IN_TENANT: ("Not found in the tenant", "Not found in the tenant"),
    Outcome.BLOCKED_BY_POLICY: ("Blocked by the tenant's policy", "Would be blocked by the tenant's policy"),
    Outcome.FAILED: ("Failed", "Would fail"),
    Outcome.CANCELLED: ("Not done: the group was unlinked", "Not done: the group was unlinked"),
}


def health_text(health: str) -> str:
    return HEALTH_TEXT.get(health, HEALTH_FALLBACK)


def run_text(status: str) -> str:
    return RUN_TEXT.get(status, status)


def outcome_text(outcome: str, preview: bool) -> str:
    texts = OUTCOME_TEXT.get(outcome)
    return texts[1 if preview else 0] if texts else outcome


def nickname_preview(display_name: str, explicit: str) -> str:
    """The line under the create form: the mail nickname the group will get (the service's own rule)."""
    explicit = explicit.strip()
    if explicit:
        return f"Mail nickname: {explicit}"
    if not display_name.strip():
        return ""
    return f"Mail nickname: {derive_mail_nickname(display_name)} (from the name; a number is added if it is taken)"


def remove_member_question(name: str, is_you: bool, is_owner: bool = False) -> str:
    """The confirmation before removing someone from the group: removing yourself or an owner says what changes."""
    if is_you:
        return (
            f"Remove yourself ({name}) from the Microsoft 365 group? You lose access to its conversations and "
            "files; you stay in the Equa team and an admin can add you back."
        )
    if is_owner:
        return (
            f"Remove {name}, an owner of the group, from its members? They stay an owner in Microsoft 365 "
            "(change owners in Microsoft 365) and stay in the Equa team."
        )
    return f"Remove {name} from the Microsoft 365 group? They stay in the Equa team."
