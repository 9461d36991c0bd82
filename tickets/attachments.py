"""Attachments: photos before and after a repair, stored with their ticket in PostgreSQL.

The type is read from the content (magic bytes), never trusted from the upload's declared
type: JPEG, PNG and WebP photos only. PDFs are refused: the attachments are photos of the
work, and a PDF is active content a browser would run when served back. A refused type is
an invalid field of a well-formed (multipart) request: 422 with code `unsupported_type`.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from caretaker import errors
from caretaker.paging import Where, fetch_page
from tickets.follow_ups import COLUMN, Kind, find_ticket

PHASES = ("before", "after", "other")
TYPES = ("image/jpeg", "image/png", "image/webp")
# Declared types that say nothing about the content (accepted; the content decides).
GENERIC = ("", "application/octet-stream")
MAX_PER_TICKET = 50  # keeps a ticket's list, and what one ticket can store, bounded
EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}
# Metadata only: the bytes are read by `fetch` alone.
META = ("id, site_id, work_order_id, complaint_id, phase, filename, content_type, size,"
        " sha256, uploaded_by, uploaded_at")


class AttachmentError(errors.Conflict):
    """An attachment the ticket does not take (too many already)."""


class Invalid(errors.Invalid, AttachmentError):
    """An upload that cannot be stored."""


class UnsupportedType(Invalid):
    """Content that is not a JPEG, PNG or WebP image, or not the type it was declared as."""

    code = "unsupported_type"


class TooLarge(Invalid):
    """A file over the size limit."""


class NotFound(errors.NotFound, AttachmentError):
    """No such attachment (in the caller's scope)."""


def sniff(data: bytes) -> str | None:
    """The image type the content's magic bytes show, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def content_type(data: bytes, declared: str | None) -> str:
    """The stored type: the sniffed one, when the declared type (if any) agrees with it."""
    found = sniff(data)
    if found is None:
        raise UnsupportedType("only JPEG, PNG and WebP photos can be attached; the content "
                              "is none of them")
    said = (declared or "").split(";")[0].strip().lower()
    if said not in GENERIC and said != found and not (said == "image/jpg"
                                                      and found == "image/jpeg"):
        raise UnsupportedType(f"the file was declared as {said} but its content is {found}")
    return found


_UNSAFE = re.compile(r'[\x00-\x1f\x7f"\\/]')


def clean_filename(name: str | None, kind: str) -> str:
    """A display name without path, control or quote characters, at most 200 characters."""
    base = unicodedata.normalize("NFC", (name or "").replace("\\", "/").rsplit("/", 1)[-1])
    base = _UNSAFE.sub("_", base).strip(" .")[:200]
    return base or "photo" + EXTENSIONS[kind]


def add(conn: psycopg.Connection[Any], kind: Kind, ticket_id: int, *, data: bytes,
        filename: str | None, declared_type: str | None, phase: str, actor: str,
        now: datetime, max_bytes: int, scope: str | None = None) -> dict[str, Any]:
    """Store a photo with a ticket; its metadata."""
    if phase not in PHASES:
        raise Invalid(f"phase must be one of {', '.join(PHASES)}")
    if len(data) > max_bytes:
        raise TooLarge(f"the file is larger than {max_bytes} bytes")
    if not data:
        raise Invalid("the file is empty")
    found = content_type(data, declared_type)
    ticket = find_ticket(conn, kind, ticket_id, scope=scope, lock=True)
    column = sql.Identifier(COLUMN[kind])
    count = conn.execute(sql.SQL("SELECT count(*) AS n FROM attachments WHERE {} = %s").format(
        column), (ticket_id,)).fetchone()
    if count is not None and count["n"] >= MAX_PER_TICKET:
        raise AttachmentError(f"this {kind.replace('_', ' ')} has {MAX_PER_TICKET} "
                              "attachments already, the most one can have")
    row = conn.execute(
        sql.SQL("INSERT INTO attachments (site_id, {}, phase, filename, content_type, size,"
                " sha256, data, uploaded_by, uploaded_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {}").format(
            column, sql.SQL(META)),
        (ticket["site_id"], ticket_id, phase, clean_filename(filename, found), found, len(data),
         hashlib.sha256(data).hexdigest(), data, actor, now)).fetchone()
    return dict(row or {})


def list_for(conn: psycopg.Connection[Any], kind: Kind, ticket_id: int, *, scope: str | None,
             limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """One page of a ticket's attachments (metadata), oldest first."""
    find_ticket(conn, kind, ticket_id, scope=scope)
    where = Where()
    where.equals(COLUMN[kind], ticket_id)
    return fetch_page(conn, "attachments", where, order="id", limit=limit, offset=offset,
                      select=META)


def fetch(conn: psycopg.Connection[Any], attachment_id: int, *,
          scope: str | None) -> dict[str, Any]:
    """One attachment with its bytes; NotFound outside the caller's site."""
    row = conn.execute("SELECT * FROM attachments WHERE id = %s"
                       " AND (%s::text IS NULL OR site_id = %s)",
                       (attachment_id, scope, scope)).fetchone()
    if row is None:
        raise NotFound(f"attachment {attachment_id} not found")
    return dict(row)
