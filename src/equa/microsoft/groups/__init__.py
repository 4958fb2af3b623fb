"""The business rules of an organization's Microsoft 365 group, one module per use case.

linking (link, unlink, and the checks every use of the link goes through), creation (create-group and its
idempotency), members (list, add, remove), details, search (the picker) and problems (the errors they answer with).
These are what the JSON routes and the settings pages call. Each function takes the request's session (it only adds
and flushes; the caller commits once, except create-group: see equa.microsoft.groups.creation) and the shared
GraphClient. Graph failures are raised as GraphError and reach a user as problem+json through
equa.microsoft.problems; the business rules raise AppError.
"""

from equa.microsoft.groups.creation import (
    ADOPTION_CLOCK_SKEW,
    IMPLICIT_KEY_PREFIX,
    IMPLICIT_RETRY_WINDOW,
    MAIL_NICKNAME_MAX,
    NICKNAME_SUFFIX_TRIES,
    CreateResult,
    create_group,
    derive_mail_nickname,
    find_group_by_nickname,
    mail_nickname_problem,
)
from equa.microsoft.groups.details import GroupDetails, group_details, member_count
from equa.microsoft.groups.linking import (
    GROUP_FIELDS,
    REPLICATION_RETRY_DELAYS,
    REPLICATION_WINDOW,
    LinkResult,
    clear_stale_link,
    fetch_group,
    group_gone,
    link_group,
    linkability,
    linked_group_id,
    recently_linked,
    require_linked_in_scope,
    tolerating_replication_lag,
    unlink_group,
)
from equa.microsoft.groups.members import (
    MEMBER_FIELDS,
    USER_FIELDS,
    GroupMember,
    MemberChange,
    MembersPage,
    add_group_member,
    find_tenant_user,
    group_owner_ids,
    list_group_members,
    remove_group_member,
    team_directory,
)
from equa.microsoft.groups.page_sizes import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from equa.microsoft.groups.problems import GroupMissing, LinkRefusal, not_linked
from equa.microsoft.groups.restore import restore_group
from equa.microsoft.groups.search import SEARCH_PAGE_SIZE, GroupChoice, GroupSearchPage, search_groups

__all__ = [
    "ADOPTION_CLOCK_SKEW",
    "DEFAULT_PAGE_SIZE",
    "GROUP_FIELDS",
    "IMPLICIT_KEY_PREFIX",
    "IMPLICIT_RETRY_WINDOW",
    "MAIL_NICKNAME_MAX",
    "MAX_PAGE_SIZE",
    "MEMBER_FIELDS",
    "NICKNAME_SUFFIX_TRIES",
    "REPLICATION_RETRY_DELAYS",
    "REPLICATION_WINDOW",
    "SEARCH_PAGE_SIZE",
    "USER_FIELDS",
    "CreateResult",
    "GroupChoice",
    "GroupDetails",
    "GroupMember",
    "GroupMissing",
    "GroupSearchPage",
    "LinkRefusal",
    "LinkResult",
    "MemberChange",
    "MembersPage",
    "add_group_member",
    "clear_stale_link",
    "create_group",
    "derive_mail_nickname",
    "fetch_group",
    "find_group_by_nickname",
    "find_tenant_user",
    "group_details",
    "group_gone",
    "group_owner_ids",
    "link_group",
    "linkability",
    "linked_group_id",
    "list_group_members",
    "mail_nickname_problem",
    "member_count",
    "not_linked",
    "recently_linked",
    "remove_group_member",
    "require_linked_in_scope",
    "restore_group",
    "search_groups",
    "team_directory",
    "tolerating_replication_lag",
    "unlink_group",
]
