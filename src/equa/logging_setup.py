"""Process logging: text or JSON lines, with a filter that masks secrets wherever they appear."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, Any

from equa.settings import LogFormat, Settings

MASK = "***"

# Credentials that can show up in URLs, headers, error texts or reprs, whatever our settings hold.
_CREDENTIAL_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*"), rf"\1 {MASK}"),
    (re.compile(r"\bequa_[A-Za-z0-9_\-]{16,}"), f"equa_{MASK}"),
    # An invitation link's token: whoever holds it can take the invited address (equa.organizations.invitations).
    (re.compile(r"\binv_[A-Za-z0-9_\-]{16,}"), f"inv_{MASK}"),
    (re.compile(r"(equa_session=)[^;,\s\"']+"), rf"\1{MASK}"),
    (
        re.compile(
            r"(?i)\b(client_secret|access_token|refresh_token|id_token|client_assertion|password|secret_key)"
            r"(\"?'?\s*[=:]\s*\"?'?)[^&\s\"',;}]+"
        ),
        rf"\1\2{MASK}",
    ),
    # JSON Web Tokens (Microsoft access tokens) even when nothing names them.
    (re.compile(r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"), MASK),
]


class SecretRedactor:
    """Masks known secret values and credential-shaped substrings in a piece of text."""

    def __init__(self, secret_values: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is masked whole.
        self._secrets = sorted({s for s in secret_values if s}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern, replacement in _CREDENTIAL_PATTERNS:
            text = pattern.sub(replacement, text)
        return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message and exception text through a SecretRedactor before any handler formats it."""

    def __init__(self, redactor: SecretRedactor) -> None:
        super().__init__()
        self.redactor = redactor
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg = self.redactor.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False)


class PrivateAccessLine(logging.Filter):
    """uvicorn's access line names the path and the status, not the query string: a query holds what people typed
    or were looked up by (search terms, addresses), which log collectors must not receive.

    Nor the client's IP address, which points at a person: it is replaced by a pseudonym, a keyed hash of the
    address (the key is the installation's session key, so the pseudonym is the same in every process and cannot
    be reversed by hashing every IPv4 address). An operator can still follow one client's requests through the log.
    """

    def __init__(self, key: str) -> None:
        super().__init__()
        self._key = key.encode()

    def client_pseudonym(self, client: str) -> str:
        # uvicorn writes "host:port" (an IPv6 host unbracketed): the port changes with every connection.
        host, _, port = client.rpartition(":")
        if not host or not port.isdigit():
            host = client
        digest = hmac.new(self._key, host.encode(), hashlib.sha256).hexdigest()
        return f"client-{digest[:10]}"

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn logs '%s - "%s %s HTTP/%s" %d' with (client, method, path and query, HTTP version, status).
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            client = (
                self.client_pseudonym(args[0]) if isinstance(args[0], str) and args[0] != "-" else args[0]
            )
            record.args = (client, args[1], args[2].split("?", 1)[0], args[3], args[4])
        return True


QUIET_LIBRARIES = ("httpx", "httpcore", "aiosqlite", "alembic")
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class _StderrOfTheMomentHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to sys.stderr as it is when a record is emitted, not as it was at configuration: whoever swaps stderr
    (a command run in-process, a test runner) must not leave the root logger writing into a closed stream."""

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, _value: IO[str]) -> None:
        pass


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    """Route all logging (ours, uvicorn's, libraries') through one redacting handler on the root logger."""
    handler: logging.StreamHandler = (  # type: ignore[type-arg]
        logging.StreamHandler(stream) if stream is not None else _StderrOfTheMomentHandler()
    )
    handler.setFormatter(
        JsonFormatter() if settings.log_format == LogFormat.JSON else logging.Formatter(TEXT_FORMAT)
    )
    secrets = list(settings.secret_values())
    # The session key also matters when it was generated into the data directory rather than set.
    secrets.append(settings.session_secret.get_secret_value())
    handler.addFilter(RedactingFilter(SecretRedactor(secrets)))

    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_equa_handler", False):
            root.removeHandler(existing)
    handler._equa_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for name in QUIET_LIBRARIES:
        # httpx logs every URL at INFO, query included: Graph $filter and $search values name people. Our Graph
        # client logs each request itself, by path template and status (at DEBUG). aiosqlite logs every statement
        # with its parameters (addresses, names) at DEBUG, which an operator turns on to see those Graph lines.
        # Alembic's start-up chatter comes from the migration check each process makes.
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's own handlers would bypass the filter; let its records reach the root handler instead.
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        # An in-process uvicorn started earlier (the demo's emulator, quiet by design) set these to WARNING.
        logger.setLevel(logging.NOTSET)
    access = logging.getLogger("uvicorn.access")
    for existing_filter in [f for f in access.filters if isinstance(f, PrivateAccessLine)]:
        access.removeFilter(existing_filter)
    access.addFilter(PrivateAccessLine(settings.session_secret.get_secret_value()))
    return handler
