"""Graph error values and the JSON shape they are rendered in (GRAPH-MAIL-FACTS §3).

Owns: ``GraphError`` (raised by handlers, rendered by the pipeline) and the canned
errors that several handlers share. Must not import anything from ``bridge`` outside
``bridge.simulator``.
"""

from __future__ import annotations

from typing import Any


class GraphError(Exception):
    """An error response: HTTP status + ``error.code`` + ``error.message`` (§3)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        inner_code: str | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.inner_code = inner_code

    def body(self, request_id: str, client_request_id: str | None, date: str) -> dict[str, Any]:
        # §3: Exchange-backed responses put date/request-id/client-request-id in innerError.
        inner: dict[str, Any] = {"date": date, "request-id": request_id}
        if client_request_id:
            inner["client-request-id"] = client_request_id
        if self.inner_code:
            inner["code"] = self.inner_code
        return {"error": {"code": self.code, "message": self.message, "innerError": inner}}


def item_not_found() -> GraphError:
    return GraphError(
        404,
        "ErrorItemNotFound",
        "The specified object was not found in the store., "
        "The process failed to get the correct properties.",
    )


def invalid_user(name: str) -> GraphError:
    return GraphError(404, "ErrorInvalidUser", f"The requested user '{name}' is invalid.")


def mailbox_not_enabled() -> GraphError:
    return GraphError(
        404,
        "MailboxNotEnabledForRESTAPI",
        "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
    )


def access_denied() -> GraphError:
    return GraphError(
        403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
    )


def bad_request(message: str, code: str = "BadRequest") -> GraphError:
    return GraphError(400, code, message)


def malformed_id() -> GraphError:
    return GraphError(400, "ErrorInvalidIdMalformed", "Id is malformed.")


def too_large() -> GraphError:
    # §13.5: bodies over ~4 MB get 413; the error code is not documented (our guess).
    return GraphError(
        413, "RequestEntityTooLarge", "The request is larger than the maximum allowed size."
    )


def invalid_base64() -> GraphError:
    return GraphError(
        400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content."
    )
