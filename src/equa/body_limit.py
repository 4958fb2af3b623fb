"""A limit on request bodies (EQUA_MAX_BODY_BYTES), enforced before anything reads them.

A pure ASGI middleware, so it sees the body as it arrives: a declared Content-Length over the limit is refused
before the application runs, and a chunked body is cut off by the first piece that passes the limit. Either way the
process never holds more than the limit (plus one piece) of a request in memory.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from equa.errors import PROBLEM_JSON, AppError


class BodyTooLarge(HTTPException):
    """Raised from `receive` inside the application; an HTTPException, so the framework lets it through."""

    def __init__(self) -> None:
        super().__init__(413, "The request body is too large.")


def body_too_large(limit: int) -> AppError:
    return AppError(
        413,
        "body_too_large",
        f"The request body is larger than this service accepts ({limit} bytes).",
        "Send a smaller request; no endpoint of this service needs a body this large.",
    )


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._declared_length(scope) > self.max_bytes:
            await self._refuse(send)
            return

        received = 0
        too_large = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            if too_large:
                raise BodyTooLarge()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if too_large:
                return  # the application's own answer to the interrupted read; ours replaces it
            response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            pass
        except Exception:
            if not too_large:
                raise
        if too_large and not response_started:
            await self._refuse(send)

    @staticmethod
    def _declared_length(scope: Scope) -> int:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0  # the server rejects a malformed length itself
        return 0

    async def _refuse(self, send: Send) -> None:
        problem = body_too_large(self.max_bytes)
        body = json.dumps(problem.to_problem()).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
