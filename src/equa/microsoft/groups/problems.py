"""The errors the group use cases answer with (problem+json through AppError), each with the action to take.

Graph's own failures are mapped in equa.microsoft.problems; these are the business rules' refusals.
"""

from __future__ import annotations

from dataclasses import dataclass

from equa.errors import AppError
from equa.plain_words import nickname_words


@dataclass(frozen=True)
class LinkRefusal:
    """Why a group cannot be linked, and what to do instead."""

    code: str
    reason: str
    action: str


def refusal_error(refusal: LinkRefusal) -> AppError:
    return AppError(
        422,
        "microsoft_group_unlinkable",
        f"This group cannot be linked. {refusal.reason}",
        refusal.action,
        extra={"reason": refusal.code},
    )


RESTORE_ACTION = "Restore it (within 30 days of its deletion), or link or create another group."
GONE_ACTION = "It can no longer be restored: link another group or create a new one."


class GroupMissing(AppError):
    """The linked group no longer exists in Microsoft 365; the link has been cleared in the caller's session.

    `deleted_at` (ISO 8601) when Microsoft 365 keeps it among deleted items: `restorable` (a Microsoft 365 group,
    30 days) or not (a security group never is); without it, the group is gone for good."""

    def __init__(
        self,
        group_id: str,
        *,
        deleted: bool = False,
        deleted_at: str | None = None,
        restorable: bool = False,
    ) -> None:
        if deleted:
            when = f" on {deleted_at}" if deleted_at else ""
            message = (
                f"The linked Microsoft 365 group {group_id} was deleted in Microsoft 365{when}; "
                "the link has been removed."
            )
        else:
            message = (
                f"The linked Microsoft 365 group {group_id} no longer exists (it was deleted outside Equa, and "
                "Microsoft 365 no longer keeps it among deleted items); the link has been removed."
            )
        super().__init__(
            409,
            "microsoft_group_missing",
            message,
            RESTORE_ACTION if restorable else GONE_ACTION,
            extra={"groupId": group_id, "deletedDateTime": deleted_at, "restorable": restorable},
        )
        self.group_id = group_id
        self.restorable = restorable


def not_linked() -> AppError:
    return AppError(
        409,
        "microsoft_group_not_linked",
        "This organization has no linked Microsoft 365 group.",
        "Link an existing group or create one first.",
    )


def linked_elsewhere() -> AppError:
    # Deliberately does not say which organization: that would leak another customer's name.
    return AppError(
        409,
        "microsoft_group_linked_elsewhere",
        "This group is already linked to another Equa organization; one group cannot serve two organizations "
        "(their admins would manage each other's membership).",
        "Choose another group, or create a new one for this organization.",
    )


def already_linked_to_other(current: str) -> AppError:
    return AppError(
        409,
        "microsoft_group_already_linked",
        f"This organization is already linked to group {current}.",
        "Unlink the current group first, then link the new one.",
        extra={"groupId": current},
    )


def nickname_taken(nickname: str) -> AppError:
    return AppError(
        409,
        "microsoft_nickname_taken",
        f"The mail alias {nickname!r} is already used by another group or mailbox in the tenant.",
        "Choose another mailNickname, or leave it out to have one derived from the name.",
        extra={"mailNickname": nickname},
    )


def unmanageable(refusal: LinkRefusal) -> AppError:
    return AppError(
        422,
        "microsoft_group_unmanageable",
        f"The members of this group cannot be changed through Microsoft Graph. {refusal.reason}",
        refusal.action,
        extra={"reason": refusal.code},
    )


def user_not_found(what: str) -> AppError:
    return AppError(
        404,
        "microsoft_user_not_found",
        f"No user in the Microsoft 365 tenant matches {what}.",
        "Check the address or id; people outside the tenant must first be invited as guests in Microsoft Entra.",
    )


def group_not_found(group_id: object, request_id: str | None) -> AppError:
    return AppError(
        404,
        "microsoft_group_not_found",
        f"The tenant has no group with id {group_id}.",
        "Check the id (Microsoft Entra admin center > Groups > Object ID), or pick the group from the list.",
        extra={"microsoftRequestId": request_id} if request_id else None,
    )


def invalid_mail_nickname(problem: str) -> AppError:
    words = nickname_words(problem)
    return AppError(
        422,
        "validation_failed",
        words,
        "Correct the highlighted field and send the request again.",
        extra={"errors": [{"field": "mailNickname", "message": problem, "detail": words}]},
    )


def idempotency_key_in_use() -> AppError:
    return AppError(
        409,
        "idempotency_key_in_use",
        "An identical create-group request is still being processed.",
        "Wait a moment and repeat the request with the same Idempotency-Key.",
    )


def idempotency_key_reused() -> AppError:
    return AppError(
        409,
        "idempotency_key_reused",
        "This Idempotency-Key was used for a group that is no longer linked to this organization.",
        "Send a new Idempotency-Key to create another group.",
    )


def equa_user_not_found() -> AppError:
    return AppError(
        404,
        "equa_user_not_found",
        "equaUserId: this person is not a member of the organization.",
        "Pick someone from the organization's team.",
    )


# --- restore-group ----------------------------------------------------------------------------------------


def nothing_to_restore() -> AppError:
    return AppError(
        404,
        "microsoft_nothing_to_restore",
        "This organization never had a Microsoft 365 group linked, so there is none to restore.",
        "Link an existing group or create one.",
    )


def still_exists(group_id: str) -> AppError:
    return AppError(
        409,
        "microsoft_group_not_deleted",
        f"The linked group {group_id} still exists in Microsoft 365: there is nothing to restore.",
        "Nothing to do; to use another group, unlink this one first.",
        extra={"groupId": group_id},
    )


def not_restorable(group_id: str) -> AppError:
    return AppError(
        409,
        "microsoft_group_not_restorable",
        f"The group {group_id} is no longer among Microsoft 365's deleted items: it was deleted more than 30 days "
        "ago, or it was a security group (those are deleted for good at once). It cannot be restored.",
        "Link another group or create a new one.",
        extra={"groupId": group_id},
    )


def security_group(group_id: str) -> AppError:
    return AppError(
        422,
        "microsoft_group_not_restorable",
        f"The group {group_id} is a security group: only Microsoft 365 groups can be restored from deleted items.",
        "Link another group or create a new Microsoft 365 group.",
        extra={"groupId": group_id, "reason": "security_group"},
    )
