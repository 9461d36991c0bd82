"""Stored weekly inspection reports: the list of a site's reports, and each one as PDF, HTML
or JSON (by `Accept`, or by the suffix `.pdf` / `.html`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from fastapi.responses import Response
from pydantic import BaseModel

from api.deps import Db, require, scoped_site
from api.resource import Page, PagingDep
from caretaker.tokens import Principal
from reports import store

router = APIRouter(prefix="/reports", tags=["reports"])

# Everyone who works the site reads its reports; a guard's handheld has no use for them.
ReportReader = Annotated[Principal, Depends(require("supervisor", "engineer", "frontdesk",
                                                    "viewer"))]
PDF = "application/pdf"
HTML = "text/html"
JSON = "application/json"
DOCUMENT: dict[int | str, dict[str, Any]] = {
    200: {"content": {PDF: {}, HTML: {}}, "description": "the document"}}


class KpiValue(BaseModel):
    value: float | None
    numerator: float | None
    denominator: float | None
    target: float | None
    previous: float | None


class ReportPublic(BaseModel):
    id: int
    site_id: str
    kind: str
    period: str
    period_start: datetime
    period_end: datetime
    language: str
    kpis: dict[str, KpiValue]
    created_at: datetime
    created_by: str
    html_bytes: int
    pdf_bytes: int
    links: dict[str, str]


def _public(row: dict[str, Any]) -> dict[str, Any]:
    base = f"/api/v1/reports/{row['id']}"
    return {**row, "links": {"pdf": base + ".pdf", "html": base + ".html"}}


def negotiate(accept: str | None, offers: tuple[str, ...], default: str) -> str:
    """The offered media type the Accept header prefers (by q, then by the header's order);
    `default` when it names none of them or accepts anything."""
    best: tuple[float, int, str] | None = None
    for i, part in enumerate((accept or "").split(",")):
        fields = [f.strip() for f in part.split(";")]
        media, q = fields[0].lower(), 1.0
        for f in fields[1:]:
            if f.startswith("q="):
                try:
                    q = float(f[2:])
                except ValueError:
                    q = 0.0
        if media in offers and q > 0 and (best is None or (q, -i) > best[:2]):
            best = (q, -i, media)
    return best[2] if best else default


def document(body: bytes, media: str, name: str) -> Response:
    """A report or sheet as a download (PDF) or a page (HTML)."""
    kind = "attachment" if media == PDF else "inline"
    return Response(body, media_type=media + ("; charset=utf-8" if media == HTML else ""),
                    headers={"Content-Disposition": f'{kind}; filename="{name}"',
                             "Vary": "Accept"})


def _file(row: dict[str, Any], media: str) -> Response:
    ext = "pdf" if media == PDF else "html"
    body = row["pdf"] if media == PDF else row["html"]
    return document(bytes(body), media, f"{row['site_id']}-{row['period']}.{ext}")


@router.get("", response_model=Page[ReportPublic])
def list_reports(conn: Db, principal: ReportReader, page: PagingDep,
                 site: str | None = None) -> dict[str, Any]:
    """Stored reports, newest period first (the documents are downloaded one by one)."""
    items, total = store.list_reports(conn, site=site, scope=scoped_site(principal, site),
                                      limit=page.limit, offset=page.offset)
    return page.answer([_public(r) for r in items], total)


@router.get("/{report_id}.pdf", response_class=Response, responses=DOCUMENT)
def get_report_pdf(report_id: int, conn: Db, principal: ReportReader) -> Response:
    """A report as PDF."""
    return _file(store.get_report(conn, report_id, scope=principal.site_id, content="pdf"),
                 PDF)


@router.get("/{report_id}.html", response_class=Response, responses=DOCUMENT)
def get_report_html(report_id: int, conn: Db, principal: ReportReader) -> Response:
    """A report as an HTML page."""
    return _file(store.get_report(conn, report_id, scope=principal.site_id, content="html"),
                 HTML)


@router.get("/{report_id}", response_model=ReportPublic,
            responses={200: {"content": {PDF: {}, HTML: {}}}})
def get_report(report_id: int, conn: Db, principal: ReportReader,
               accept: Annotated[str | None, Header()] = None) -> Any:
    """A report: PDF (the default), HTML or its JSON summary, as `Accept` asks."""
    media = negotiate(accept, (PDF, HTML, JSON), PDF)
    if media == JSON:
        return _public(store.get_report(conn, report_id, scope=principal.site_id))
    content = "pdf" if media == PDF else "html"
    return _file(store.get_report(conn, report_id, scope=principal.site_id, content=content),
                 media)
