"""Validation errors in plain words, the same for the JSON API's `detail` and the pages' messages at a field.

Pydantic's own messages ("Input should be a valid UUID, invalid character: found `n` at 1") stay in the API's
`errors` list for programs; people read these sentences instead.
"""

from __future__ import annotations

from typing import Any

NOT_A_GROUP_ID = "That is not a group ID: paste the Object ID from Microsoft Entra, or search by name below."
NOT_AN_ID = "That is not an ID: copy it exactly as it was given (32 hexadecimal digits in five groups)."
NICKNAME_RULE = "use plain letters (a to z, no accents), digits and hyphens, like northwind-team"

# Field-specific sentences: (field, kind of error) -> words. A kind is the first part of pydantic's error type.
_FIELD_WORDS: dict[tuple[str, str], str] = {
    ("groupId", "uuid"): NOT_A_GROUP_ID,
    ("displayName", "string_too_short"): "Enter a name for the group.",
    ("displayName", "missing"): "Enter a name for the group.",
    ("mailNickname", "string_too_short"): f"Leave the mail nickname empty, or {NICKNAME_RULE}.",
}


def _kind(error_type: str) -> str:
    for prefix in (
        "uuid",
        "string_too_short",
        "string_too_long",
        "missing",
        "bool",
        "int",
        "extra_forbidden",
    ):
        if error_type.startswith(prefix):
            return prefix
    return error_type


def field_words(field: str, error_type: str, raw: str, ctx: dict[str, Any] | None = None) -> str:
    """The plain sentence for one validation error of `field` (pydantic's `type`, `msg` and `ctx`)."""
    kind = _kind(error_type)
    specific = _FIELD_WORDS.get((field, kind))
    if specific:
        return specific
    ctx = ctx or {}
    if kind == "uuid":
        return NOT_AN_ID
    if kind == "missing":
        return "This is required."
    if kind == "string_too_short":
        return (
            "Enter a value."
            if ctx.get("min_length") == 1
            else f"Use at least {ctx.get('min_length')} characters."
        )
    if kind == "string_too_long":
        return f"Use at most {ctx.get('max_length')} characters."
    if kind == "bool":
        return "Use true or false."
    if kind == "int":
        return "Use a whole number."
    if kind == "extra_forbidden":
        return "This field is not known here: leave it out."
    text = raw.removeprefix("Value error, ").strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith(".") else f"{text}."


def nickname_words(problem: str) -> str:
    """A mail nickname Microsoft would refuse, in plain words (`problem` is groups.mail_nickname_problem's)."""
    if problem.startswith("must be at most"):
        return f"A mail nickname has at most 64 characters; {NICKNAME_RULE}."
    if "space" in problem:
        return f"A mail nickname cannot contain spaces: {NICKNAME_RULE}."
    if problem.startswith("must use ASCII"):
        return f"A mail nickname cannot contain accented or non-Latin letters: {NICKNAME_RULE}."
    shown = problem.removeprefix("must not contain ").replace("'", "")
    return f"A mail nickname cannot contain {shown}: {NICKNAME_RULE}."


def api_detail(field: str, error_type: str, words: str) -> str:
    """The API's `detail` for the first invalid field: its sentence, prefixed with the field's name unless the
    sentence is one written for that field (and so says what it is about)."""
    return words if (field, _kind(error_type)) in _FIELD_WORDS else f"{field}: {words}"
