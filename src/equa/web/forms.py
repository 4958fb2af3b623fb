"""Validation of page form fields: each problem is a message placed next to the field it concerns."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from equa.organizations.models import ORGANIZATION_NAME_MAX_LENGTH, Role

FieldErrors = dict[str, str]


def organization_name(raw: object, errors: FieldErrors, field: str = "name") -> str:
    name = str(raw or "").strip()
    if not name:
        errors[field] = "Enter a name."
    elif len(name) > ORGANIZATION_NAME_MAX_LENGTH:
        errors[field] = f"Use at most {ORGANIZATION_NAME_MAX_LENGTH} characters."
    return name


def email_address(raw: object, errors: FieldErrors, field: str = "email") -> str:
    value = str(raw or "").strip()
    if not value:
        errors[field] = "Enter an email address."
        return value
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        errors[field] = f"This is not a valid email address: {exc}"
        return value


def role(raw: object, errors: FieldErrors, field: str = "role") -> Role:
    try:
        return Role(str(raw or Role.MEMBER.value))
    except ValueError:
        errors[field] = "Choose admin or member."
        return Role.MEMBER
