"""API errors in OpenAI's shape: one exception type that carries the HTTP status, the body and extra headers."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

from sakura_core.server.routes.schemas.common import ErrorDetail, ErrorResponse

#: How many validation problems one error message lists.
MAX_LISTED_PROBLEMS = 3


class APIError(Exception):
    """An error answered as ``{"error": {"message", "type", "code", "param"}}`` with ``status``.

    Raised anywhere below the routes (it knows nothing of HTTP libraries); the server's error middleware turns
    it into the response. ``close_connection`` closes the connection after the answer (the client may still be
    sending a body the server will not read).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        close_connection: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = tuple(headers)
        self.close_connection = close_connection

    def body(self) -> ErrorResponse:
        """The response body."""
        return ErrorResponse(error=ErrorDetail(message=self.message, type=self.type, code=self.code, param=self.param))


def invalid_request(message: str, *, param: str | None = None, code: str = "invalid_value") -> APIError:
    """400: the request is well-formed JSON but asks for something invalid."""
    return APIError(400, message, param=param, code=code)


def from_validation_error(error: ValidationError) -> APIError:
    """400 listing the first problems pydantic found, each as ``field.path: what is wrong``.

    A value that fits none of a union's types is one problem (``must be a valid string or a valid list``).
    """
    problems: dict[str, list[str]] = {}
    first_type = None
    for problem in error.errors(include_url=False, include_context=False):
        location = ".".join(str(part) for part in problem["loc"] if not _is_union_tag(part))
        problems.setdefault(location, [])
        if problem["msg"] not in problems[location]:
            problems[location].append(problem["msg"])
        first_type = first_type or problem["type"]
    described = [f"{location or 'body'}: {_either(messages)}" for location, messages in problems.items()]
    if len(described) > MAX_LISTED_PROBLEMS:
        described = [*described[:MAX_LISTED_PROBLEMS], f"({len(problems) - MAX_LISTED_PROBLEMS} more)"]
    first = next(iter(problems), None)
    code = "missing_required_parameter" if first_type == "missing" else "invalid_value"
    return APIError(400, "invalid request: " + "; ".join(described), param=first or None, code=code)


def _either(messages: list[str]) -> str:
    """``Input should be a valid string or a valid list``."""
    prefix = "Input should be "
    rest = [m.removeprefix(prefix) if m.startswith(prefix) else m for m in messages[1:]]
    return " or ".join([messages[0], *rest])


def _is_union_tag(part: str | int) -> bool:
    """pydantic names the union member an error is about in its location (``str``, ``list[str]``)."""
    return isinstance(part, str) and (
        "[" in part or "-" in part or part in {"str", "int", "float", "bool", "none", "list", "dict"}
    )


def server_error(message: str, *, code: str = "internal_error") -> APIError:
    """500: the server or the engine failed; the message says what happened."""
    return APIError(500, message, type="server_error", code=code)


def unavailable(message: str, *, code: str, retry_after: int | None = None) -> APIError:
    """503: the server cannot take the request now (loading, queue full, shutting down)."""
    headers = [("Retry-After", str(retry_after))] if retry_after is not None else []
    return APIError(503, message, type="server_error", code=code, headers=headers)
