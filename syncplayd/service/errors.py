"""Errors the service raises for the caller's mistakes or refusals.

Each carries a stable machine ``code`` (part of the public contract, listed in
the OpenAPI document) and the HTTP status the API answers with.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid input field."""

    field: str
    message: str


@dataclass(slots=True)
class ServiceError(Exception):
    """A refusal the caller can act on; never a bug of ours."""

    status: int
    code: str
    detail: str
    errors: list[FieldError] = field(default_factory=list)
    retry_after: int | None = None

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.detail}"


def not_found(what: str) -> ServiceError:
    return ServiceError(404, "not-found", f"{what} not found")


def forbidden(detail: str, code: str = "forbidden") -> ServiceError:
    return ServiceError(403, code, detail)


def invalid(field_name: str, message: str) -> ServiceError:
    return ServiceError(
        422, "validation-failed", f"{field_name}: {message}", [FieldError(field_name, message)]
    )


def room_ended() -> ServiceError:
    return ServiceError(410, "room-ended", "the room has ended")
