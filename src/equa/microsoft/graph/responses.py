"""What the Graph client returns: an answer, or (in dry-run) the write it kept instead of sending."""

from __future__ import annotations

import json as jsonlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class GraphResponse:
    """A successful Graph answer (or, in dry-run, the echo of a write that was not sent)."""

    status: int
    headers: Mapping[str, str]
    content: bytes
    request_id: str | None = None
    client_request_id: str | None = None
    dry_run: bool = False

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content) if self.content.strip() else None

    @classmethod
    def dry_run_echo(cls, method: str, url: str, body: Any) -> GraphResponse:
        """What dry-run answers instead of sending a write: 202 and the write it kept."""
        echo = {"dryRun": True, "method": method, "url": url, "body": body}
        content = jsonlib.dumps(echo).encode()
        return cls(status=202, headers={"content-type": "application/json"}, content=content, dry_run=True)


@dataclass(frozen=True)
class RecordedWrite:
    """A write that dry-run mode kept instead of sending."""

    method: str
    url: str
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
