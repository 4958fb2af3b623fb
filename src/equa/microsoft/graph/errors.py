"""Graph and sign-in errors, classified once by what the caller should do next, each with an admin action.

The tree::

    GraphError                       status, code, message, request_id, action
    ├── GraphTransient               try again later (5xx, network, sign-in endpoint unreachable)
    │   └── GraphThrottled           429: retry_after seconds
    ├── GraphNotFound                the object does not exist (or is not a member)
    ├── GraphAlreadyExists           already there (e.g. "added object references already exist")
    ├── GraphPermissionDenied        missing consent or role
    │   └── GraphGuestBlocked        tenant policy keeps guests out of the group; permanent
    ├── GraphInvalidRequest          our request is wrong; repeating it will not help
    ├── GraphAuthenticationFailed    sign-in failed (AADSTS codes) or Graph rejected the token twice
    └── GraphUnmanageable            Graph cannot change this group's membership (dynamic, synced, mail-enabled)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from equa.microsoft.graph.permissions import (
    Feature,
    ScopeKind,
    ScopeSetting,
    consent_action,
    unit_role_instruction,
)


class GraphError(Exception):
    """A failed call to Microsoft; never carries a token or a secret."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        action: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.action = action
        # Seconds before trying again is worth it, when the service said so (or a library enforces it).
        self.retry_after: float | None = None
        # Filled by the client when it gives up after retrying.
        self.attempts = 1
        self.waited_seconds = 0.0

    def __str__(self) -> str:
        parts = [self.message]
        if self.action:
            parts.append(f"Action: {self.action}")
        details = [f"status {self.status}" if self.status else "", f"code {self.code}" if self.code else ""]
        if self.request_id:
            details.append(f"request-id {self.request_id}")
        detail_text = ", ".join(d for d in details if d)
        if detail_text:
            parts.append(f"({detail_text})")
        return " ".join(parts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"request_id={self.request_id!r}, message={self.message!r})"
        )

    def gave_up(self, attempts: int, waited_seconds: float) -> GraphError:
        """Record that retries ran out, and say so in the message."""
        self.attempts = attempts
        self.waited_seconds = waited_seconds
        self.message = (
            f"{self.message} Gave up after {attempts} attempt{'s' if attempts != 1 else ''} "
            f"over {waited_seconds:.1f} s of waiting."
        )
        self.args = (self.message,)
        return self


class GraphTransient(GraphError):
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class GraphThrottled(GraphTransient):
    """429: `retry_after` holds the seconds Graph asked for."""


class GraphNotFound(GraphError):
    pass


class GraphAlreadyExists(GraphError):
    pass


class GraphPermissionDenied(GraphError):
    def __init__(self, message: str, *, feature: Feature | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        # What the refused request was for: a refusal of a feature the tenant may choose not to grant says
        # nothing about the app's consent as a whole.
        self.feature = feature


class GraphGuestBlocked(GraphPermissionDenied):
    pass


class GraphInvalidRequest(GraphError):
    pass


class GraphAuthenticationFailed(GraphError):
    pass


class GraphUnmanageable(GraphError):
    pass


# --- the catalogue: sign-in (AADSTS) codes -------------------------------------------------------------------

_TOKEN_ACTIONS: dict[str, tuple[str, str]] = {
    "AADSTS7000215": (
        "The client secret is wrong.",
        "Paste the client secret's Value, not its Secret ID, into MS_AUTH_SECRET "
        "(Entra admin center > App registrations > Certificates & secrets).",
    ),
    "AADSTS7000222": (
        "The client secret has expired.",
        "Create a new client secret for the app registration and update MS_AUTH_SECRET, "
        "or switch to a certificate (MS_AUTH_CERTIFICATE_PATH).",
    ),
    "AADSTS700016": (
        "The application was not found in the tenant.",
        "Check MS_AUTH_CLIENT_ID (the app registration's Application (client) ID) and MS_AUTH_TENANT_ID "
        "(the Directory (tenant) ID the app is registered or consented in).",
    ),
    "AADSTS90002": (
        "The tenant was not found.",
        "Check MS_AUTH_TENANT_ID, and that MS_AUTHORITY_HOST is the sign-in host of the tenant's cloud "
        "(https://login.microsoftonline.com for the public cloud).",
    ),
    "AADSTS700027": (
        "The certificate was not accepted (the client assertion's signature did not match).",
        "Upload the public part of the certificate in MS_AUTH_CERTIFICATE_PATH to the app registration "
        "(Certificates & secrets > Certificates); if it is there, check it has not expired and that the PEM file "
        "holds the private key of that same certificate.",
    ),
    "AADSTS700024": (
        "The client assertion is not within its valid time range.",
        "Check this server's clock (use NTP).",
    ),
    "AADSTS65004": (
        "An administrator declined consent.",
        "Ask a tenant administrator to grant admin consent to the app.",
    ),
    "AADSTS70011": (
        "The requested scope is not valid.",
        "An app signing in as itself asks for a resource's `.default` scope (https://graph.microsoft.com/.default "
        "in the public cloud): unset MS_GRAPH_SCOPE, or set it to the `.default` scope of MS_GRAPH_URL's cloud.",
    ),
    "AADSTS500011": (
        "Microsoft Graph was not found in the tenant for the requested resource.",
        "Check that MS_GRAPH_URL (and MS_GRAPH_SCOPE, if set) is the Graph host of the tenant's cloud and that "
        "MS_AUTHORITY_HOST is the same cloud's sign-in host; a national-cloud tenant cannot use the public "
        "cloud's Graph, nor the other way round.",
    ),
    "AADSTS7000112": (
        "The application is disabled in the tenant.",
        "A tenant administrator enables it again: Entra admin center > Enterprise applications > the app > "
        "Properties > Enabled for users to sign in: Yes.",
    ),
    "AADSTS53003": (
        "Conditional Access blocked the app's sign-in.",
        "A tenant administrator reviews the Conditional Access policies that apply to workload identities "
        "(Entra admin center > Protection > Conditional Access; the service principal's sign-in log names the "
        "policy) and allows this server's network location, or excludes the app.",
    ),
    "AADSTS7000229": (
        "The application has no service principal in the tenant (it was never consented there).",
        "A tenant administrator grants admin consent, which creates the app's enterprise application in the "
        "tenant: `equa microsoft check` prints the admin consent URL.",
    ),
    "AADSTS650057": (
        "The app asks for a permission that is not configured.",
        "Add the Microsoft Graph application permissions to the app registration, then grant admin consent.",
    ),
}

_AADSTS = re.compile(r"AADSTS(\d+)")


def classify_token_error(result: Mapping[str, Any], *, status: int | None = None) -> GraphError:
    """Turn an MSAL / token-endpoint error result into GraphAuthenticationFailed (or Transient for outages)."""
    error = str(result.get("error") or "")
    description = str(result.get("error_description") or "")
    codes = result.get("error_codes") or []
    match = _AADSTS.search(description)
    number = str(codes[0]) if codes else (match.group(1) if match else None)
    code = f"AADSTS{number}" if number else (error or None)
    request_id = result.get("correlation_id") or result.get("trace_id")
    # The description trails off into "Trace ID: ... Correlation ID: ... Timestamp: ...", on new lines or not.
    summary = description.split("Trace ID:", 1)[0].strip()
    first_line = summary.splitlines()[0].strip() if summary else error or "Sign-in failed."
    if error == "temporarily_unavailable" or (status is not None and status >= 500):
        return GraphTransient(
            f"The Microsoft sign-in service is unavailable: {first_line}",
            status=status,
            code=code,
            request_id=request_id,
            action="Wait and try again; check https://status.cloud.microsoft if it persists.",
        )
    if code in _TOKEN_ACTIONS:
        summary, action = _TOKEN_ACTIONS[code]
        return GraphAuthenticationFailed(
            f"{summary} {first_line}", status=status, code=code, request_id=request_id, action=action
        )
    if error == "invalid_client":
        action = (
            "Check MS_AUTH_SECRET or MS_AUTH_CERTIFICATE_PATH against the app registration's credentials."
        )
    elif error in ("unauthorized_client", "invalid_tenant", "invalid_request"):
        action = "Check MS_AUTH_CLIENT_ID, MS_AUTH_TENANT_ID and MS_AUTHORITY_HOST."
    else:
        action = "Check the app registration and the MS_AUTH_* settings."
    return GraphAuthenticationFailed(
        f"Signing in to Microsoft failed: {first_line}",
        status=status,
        code=code,
        request_id=request_id,
        action=action,
    )


# --- the catalogue: Graph error bodies -----------------------------------------------------------------------

ALREADY_MEMBER = "added object references already exist"
NOT_A_MEMBER = "removed object references do not exist"
GUEST_POLICY = "guests users are not allowed to join"
MAIL_ENABLED_READ_ONLY = "mail-enabled security groups and or distribution list"
ON_PREMISES_MASTERED = "on-premises mastered"
DYNAMIC_MEMBERSHIP = "dynamic"
REFERENCED_OBJECT_MISSING = "one of the objects being referenced don't exist"
SAME_VALUE_EXISTS = "another object with the same value for property"

# Variants of Authorization_RequestDenied other than a missing permission (the guest policy is above).
ROLE_ASSIGNABLE = ("role-assignable", "roleassignable", "isassignabletorole", "role assignable")
RESTRICTED_MANAGEMENT = "restricted management"
NO_ROLES_IN_TOKEN = "either scp or roles claim need to be present"


def parse_error_body(body: Any) -> tuple[str | None, str, str | None]:
    """(code, message, request-id) from a Graph error body given as bytes, text or parsed JSON."""
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        text = body
        try:
            body = json.loads(text) if text.strip() else {}
        except ValueError:
            return None, text.strip()[:500], None
    if not isinstance(body, Mapping):
        return None, "", None
    error = body.get("error")
    if not isinstance(error, Mapping):
        return None, str(body.get("message") or ""), None
    inner = error.get("innerError") or error.get("innererror") or {}
    request_id = inner.get("request-id") if isinstance(inner, Mapping) else None
    return error.get("code"), str(error.get("message") or ""), request_id


def classify_graph_error(
    status: int,
    body: Any,
    *,
    headers: Mapping[str, str] | None = None,
    request_id: str | None = None,
    admin_consent_url: str | None = None,
    default_retry_after: float | None = None,
    group_scope: ScopeSetting | None = None,
    feature: Feature | None = None,
) -> GraphError:
    """Classify one Graph error answer (a whole response, or one $batch item) into the GraphError tree.

    `group_scope` and `feature` (what the request was for) let a missing permission name exactly which one.
    """
    from equa.microsoft.graph.retry import parse_retry_after

    code, message, body_request_id = parse_error_body(body)
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    request_id = request_id or headers.get("request-id") or body_request_id
    message = message or f"Microsoft Graph answered HTTP {status}."
    lowered = message.lower()
    common: dict[str, Any] = {"status": status, "code": code, "request_id": request_id}

    if status == 429:
        retry_after = parse_retry_after(headers.get("retry-after"))
        if retry_after is None:
            retry_after = default_retry_after
        wait = f"{retry_after:g} s" if retry_after is not None else "a while"
        return GraphThrottled(
            message,
            retry_after=retry_after,
            action=f"Microsoft Graph is throttling this app; wait {wait} before trying again.",
            **common,
        )
    if status in (500, 502, 503, 504) or status >= 500:
        return GraphTransient(
            message, action="Microsoft Graph had a temporary problem; try again in a few minutes.", **common
        )
    if MAIL_ENABLED_READ_ONLY in lowered:
        return GraphUnmanageable(
            message,
            action="Mail-enabled security groups and distribution lists cannot be changed through Microsoft "
            "Graph; manage them in Exchange, or link a Microsoft 365 group instead.",
            **common,
        )
    if ON_PREMISES_MASTERED in lowered or "directory sync" in lowered:
        return GraphUnmanageable(
            message,
            action="This group is synced from on-premises Active Directory; change its membership there, "
            "or link a cloud group instead.",
            **common,
        )
    if DYNAMIC_MEMBERSHIP in lowered and "member" in lowered:
        return GraphUnmanageable(
            message,
            action="This group has dynamic membership, set by a rule; change the rule or link an assigned "
            "group instead.",
            **common,
        )
    if status == 403:
        if GUEST_POLICY in lowered:
            return GraphGuestBlocked(
                message,
                action="The tenant's guest policy keeps guests out of this group; an administrator can allow "
                "guests in the group settings, or the person can join with a member account.",
                **common,
            )
        return _request_denied(message, lowered, common, admin_consent_url, group_scope, feature)
    if status == 401 and NO_ROLES_IN_TOKEN in lowered:
        return _request_denied(message, lowered, common, admin_consent_url, group_scope, None)
    if status == 401:
        return GraphAuthenticationFailed(
            message,
            action="Microsoft Graph rejected the app's access token; check MS_AUTH_TENANT_ID is the tenant "
            "the app is consented in and that this server's clock is right.",
            **common,
        )
    if status == 404 or NOT_A_MEMBER in lowered:
        return GraphNotFound(
            message, action="The object no longer exists in Microsoft 365, or it is not a member.", **common
        )
    if status == 409 or ALREADY_MEMBER in lowered or SAME_VALUE_EXISTS in lowered:
        return GraphAlreadyExists(message, action="Nothing to do: it is already there.", **common)
    if REFERENCED_OBJECT_MISSING in lowered:
        return GraphNotFound(
            message,
            action="A user or group it refers to does not exist yet; if it was just created, Microsoft 365 "
            "may still be replicating it, so try again in a minute.",
            **common,
        )
    if status == 424:
        return GraphInvalidRequest(
            message,
            action="A request in the same batch that this one depended on failed; see that one.",
            **common,
        )
    return GraphInvalidRequest(
        message,
        action="Microsoft Graph refused the request as sent; report it with the request-id.",
        **common,
    )


def _request_denied(
    message: str,
    lowered: str,
    common: dict[str, Any],
    admin_consent_url: str | None,
    group_scope: ScopeSetting | None,
    feature: Feature | None,
) -> GraphPermissionDenied:
    """The kinds of Authorization_RequestDenied, each with what to do about it."""
    scope = group_scope or ScopeSetting(ScopeKind.GRANTED)
    if any(marker in lowered for marker in ROLE_ASSIGNABLE):
        action = (
            "This group is role-assignable: changing its members needs RoleManagement.ReadWrite.Directory, which "
            "this service deliberately does not hold. Link a group that is not role-assignable."
        )
    elif RESTRICTED_MANAGEMENT in lowered:
        action = (
            "The object is in a restricted management administrative unit: only administrators assigned to that "
            "unit can change it, whatever the app's permissions. Manage it in the unit, or link another group."
        )
    elif NO_ROLES_IN_TOKEN in lowered:
        action = consent_action(scope, admin_consent_url)
        action = f"The access token carries no application permission. {action}"
    elif feature is Feature.CREATE_GROUPS and scope.kind == ScopeKind.ADMINISTRATIVE_UNIT:
        # Graph answers the same 403 for a missing role as for a missing permission: name both.
        action = (
            f"{unit_role_instruction(scope)} If it holds the role: "
            f"{consent_action(scope, admin_consent_url, feature)}"
        )
    else:
        action = consent_action(scope, admin_consent_url, feature)
    return GraphPermissionDenied(message, action=action, feature=feature, **common)


# Sign-in refusals that mean the tenant no longer lets the app in: no service principal (consent revoked or never
# given), the app unknown to the tenant, consent missing, or the app disabled there.
FEATURES_A_TENANT_MAY_WITHHOLD = frozenset({Feature.CREATE_GROUPS, Feature.RESTORE_GROUPS})
CONSENT_REFUSED_CODES = frozenset({"AADSTS7000229", "AADSTS700016", "AADSTS65001", "AADSTS7000112"})


def refuses_the_app(error: GraphError) -> bool:
    """Whether the tenant refuses the app itself (its consent is gone), not just one request or one group.

    True for the sign-in refusals above, and for Graph's 403 (or role-less 401) for missing application
    permissions; the guest policy, role-assignable groups and restricted administrative units are about a group.
    A refused create or restore is about that feature: restoring needs an optional permission, and creating
    inside an administrative unit a directory role, which a tenant may withhold while the rest works.
    """
    if isinstance(error, GraphAuthenticationFailed):
        return error.code in CONSENT_REFUSED_CODES
    if (
        isinstance(error, GraphPermissionDenied)
        and error.feature in FEATURES_A_TENANT_MAY_WITHHOLD
        and NO_ROLES_IN_TOKEN not in str(error.message).lower()
    ):
        return False
    if isinstance(error, GraphPermissionDenied) and not isinstance(error, GraphGuestBlocked):
        lowered = str(error.message).lower()
        return not (any(marker in lowered for marker in ROLE_ASSIGNABLE) or RESTRICTED_MANAGEMENT in lowered)
    return False
