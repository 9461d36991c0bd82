"""Pieces every list-and-edit router shares: the page shape, paging parameters, site checks."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, BeforeValidator, Field

from api.errors import ApiError
from caretaker.paging import MAX_CURSOR, KeysetPage
from caretaker.tokens import Principal

T = TypeVar("T")

_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _not_a_number(value: Any) -> Any:
    # pydantic reads a bare number as seconds since 1970; a caller who sends one has made a
    # mistake the schema (string, date-time) already calls invalid.
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("give a date and time such as 2026-11-23T08:00:00Z")
    return value


def _whole_number(value: Any) -> Any:
    # "+0.0" or "1e3" is not how a count is written; the schema says integer.
    if isinstance(value, str) and not value.isdigit():
        raise ValueError("give a whole number such as 100")
    return value


When = Annotated[datetime, BeforeValidator(_not_a_number)]
"""A date-time query parameter (ISO 8601 only; no seconds-since-1970 numbers)."""
Day = Annotated[date, BeforeValidator(_not_a_number)]
"""A date query parameter (ISO 8601 only)."""



class Page(BaseModel, Generic[T]):
    """One page of a list: the items, how many match in all, and the paging used."""

    items: list[T]
    total: int
    limit: int
    offset: int


class Paging(BaseModel):
    """?limit= and ?offset= of a list request."""

    limit: int
    offset: int

    def answer(self, items: list[Any], total: int) -> dict[str, Any]:
        """The list answer: this page's items, how many match in all, and this paging."""
        return {"items": items, "total": total, "limit": self.limit, "offset": self.offset}


class CursorPage(Page[T], Generic[T]):
    """A page of a list that can grow large: also the next page's cursor, and whether
    `total` was counted exactly."""

    total_exact: bool = Field(description=(
        "true: `total` is exact; false: more than 10,000 match and `total` is the planner's"
        " estimate"))
    next_cursor: str | None = Field(description=(
        "give it as ?cursor= for the next page (null: this is the last page)"))


CursorParam = Annotated[str | None, Query(max_length=MAX_CURSOR, description=(
    "the next_cursor of the previous page: the page after it, as fast however deep"
    " (instead of offset)"))]


def cursor_answer(paging: Paging, page: KeysetPage) -> dict[str, Any]:
    """The answer of a cursor-paged list."""
    return {"items": page.rows, "total": page.total, "total_exact": page.exact,
            "limit": paging.limit, "offset": paging.offset, "next_cursor": page.next_cursor}


MAX_LIMIT = 1000
# Deeper than any list will be; an unbounded offset reached PostgreSQL's bigint (a 500).
MAX_OFFSET = 1_000_000_000


async def paging(limit: Annotated[int, BeforeValidator(_whole_number),
                            Query(ge=1, le=MAX_LIMIT)] = 100,
           offset: Annotated[int, BeforeValidator(_whole_number),
                             Query(ge=0, le=MAX_OFFSET)] = 0) -> Paging:
    """The paging parameters of a list request (default 100 items, at most 1000)."""
    return Paging(limit=limit, offset=offset)


PagingDep = Annotated[Paging, Depends(paging)]


def check_write_site(principal: Principal, site: str) -> None:
    """Refuse a write into a site outside a site-scoped token's own site (403)."""
    if principal.site_id is not None and principal.site_id != site:
        raise ApiError(403, f"this token is limited to site {principal.site_id!r}",
                       code="forbidden")


def changes_of(body: BaseModel, *, not_null: tuple[str, ...] = ("name",)) -> dict[str, Any]:
    """The fields a PATCH body sets; 422 when it sets a required field to null."""
    changes = body.model_dump(exclude_unset=True)
    nulled = [k for k in not_null if k in changes and changes[k] is None]
    if nulled:
        raise ApiError(422, f"{', '.join(nulled)} may not be null", code="invalid")
    return changes
