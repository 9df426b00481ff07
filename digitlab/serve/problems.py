"""Refusals: every request the server turns down gets a 4xx whose body says why.

The body is ``{"detail": "..."}``, except under ``/v2``, where the Open Inference Protocol asks for
``{"error": "..."}`` (and for 400 where the JSON API says 422). `HTTPProblem` is what the server's
own code raises; `add_error_handlers` turns it, `DigitlabError` (a bad image, an unknown model),
FastAPI's validation errors and Starlette's HTTP errors into such a body.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import DigitlabError
from .store import ModelNotFound


class HTTPProblem(Exception):
    """A request the server refuses: the status code, the reason given in the body, and any headers
    to send with it (``Retry-After`` with a 503)."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}


def problem(path: str, status: int, reason: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The response refusing a request to ``path``."""
    key = "error" if path.startswith("/v2") else "detail"
    return JSONResponse({key: reason}, status_code=status, headers=headers)


def validation_reason(errors) -> str:
    """Pydantic's validation errors as one line: where and what, for the first five."""
    parts = []
    for err in errors[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    more = len(errors) - 5
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def add_error_handlers(app: FastAPI) -> None:
    """Make every refusal a `problem`."""

    @app.exception_handler(HTTPProblem)
    async def _http_problem(request: Request, exc: HTTPProblem):
        return problem(request.url.path, exc.status, exc.reason, exc.headers)

    @app.exception_handler(DigitlabError)
    async def _digitlab_error(request: Request, exc: DigitlabError):
        status = 404 if isinstance(exc, ModelNotFound) else 400 if request.url.path.startswith("/v2") else 422
        return problem(request.url.path, status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        status = 400 if request.url.path.startswith("/v2") else 422
        return problem(request.url.path, status, validation_reason(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        response = problem(request.url.path, exc.status_code, str(exc.detail))
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response
