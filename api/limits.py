"""Request limits checked before any route runs: body size, and no NUL byte in a URL."""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError, error_response

# Photo uploads (multipart) may be as large as the attachment-size setting, plus this much for
# the multipart framing and the other form fields; every other request keeps `max_body`.
UPLOADS = re.compile(r"/api/v1/(?:work-orders|complaints)/[^/]+/attachments/?")
UPLOAD_SLACK = 64 * 1024


class RequestLimits:
    """A pure ASGI middleware: 413 for a body over `max_body` bytes, 422 for a NUL in the URL.

    A declared Content-Length over the limit is refused before the body is read; a chunked
    body is counted as it arrives and refused once it passes the limit, so no more than
    `max_body` bytes of it are ever held. A POST to an attachments route (UPLOADS) has the
    app's `attachment_max_bytes` setting plus UPLOAD_SLACK as its limit instead.
    """

    def __init__(self, app: ASGIApp, *, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        if "\x00" in scope.get("path", "") or b"\x00" in unquote_to_bytes(query):
            # PostgreSQL text cannot hold NUL; no identifier or filter value contains one.
            await error_response(422, "the URL contains a NUL byte")(scope, receive, send)
            return
        limit = self._limit(scope)
        length = _content_length(scope)
        if length is not None and length > limit:
            await self._too_large(scope, receive, send, limit)
            return

        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise ApiError(413, self._message(limit), code="too_large")
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except ApiError as exc:
            # Raised by counted_receive where no route turned it into a response.
            if started or exc.status_code != 413:
                raise
            await self._too_large(scope, receive, send, limit)

    def _limit(self, scope: Scope) -> int:
        """The body limit of this request: larger for a photo upload."""
        if scope.get("method") == "POST" and UPLOADS.fullmatch(scope.get("path", "")):
            app = scope.get("app")
            settings = getattr(getattr(app, "state", None), "settings", None)
            if settings is not None:
                return max(self.max_body, int(settings.attachment_max_bytes) + UPLOAD_SLACK)
        return self.max_body

    @staticmethod
    def _message(limit: int) -> str:
        return f"the request body is larger than {limit} bytes"

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = error_response(413, self._message(limit), code="too_large",
                                  headers={"Connection": "close"})
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
