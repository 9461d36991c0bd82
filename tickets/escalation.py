"""The escalation ladder (site file `escalation:`): who hears of a passed deadline, and when.

When a live work order's respond or resolve deadline passes, or a complaint is still
unanswered at its `answer_by`, the record is marked overdue (level 0: an `overdue` event to
the site's usual receivers) and then climbs the ladder: level n is told (`escalated`, to the
level's `who` — audiences or receiver names — by its `channel` if one is given) once the
deadline is `after` behind. Each level happens exactly once per deadline: the escalation
tables' keys decide it, so two workers racing cannot tell anyone twice.

Defaults follow the centre's manuals (seed 001: 工程维修人员值班制度, 客户投诉处理制度): a work
order goes to the engineer on duty at its deadline, the engineering manager (工程管理部经理)
30 min later and the project manager (项目经理) 2 h later; an unanswered complaint to the
customer-service supervisor (客户服务部主管) at its deadline, the project manager 2 h later
and the company's quality department (品质管理部) a day later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from caretaker.durations import Duration
from caretaker.errors import Invalid
from caretaker.ids import Ident
from caretaker.site_config import problems
from tickets import complaints
from tickets.notification_policy import (
    Channel,
    NotificationsSpec,
    parse_spec,
    reach,
    save_section,
)
from tickets.notify import notify

ACTOR = "system"
LIVE = ("open", "acknowledged", "in_progress")


class EscalationError(Invalid):
    """An escalation section that cannot be used; the message names the field."""


class Rung(BaseModel):
    """One rung: who is told, by which channel, how long after the deadline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: int = Field(ge=1, le=9)
    after: Duration = Field(default=timedelta(0), description="how long past the deadline")
    who: list[Ident] = Field(min_length=1, max_length=20, description=(
        "audiences (engineer_on_duty, quality, ...) or receiver names"))
    channel: Channel | None = Field(default=None, description=(
        "only the receivers of this channel (default: all of theirs)"))


def _levels(*rungs: tuple[int, timedelta, str]) -> list[Rung]:
    return [Rung(level=n, after=after, who=[who]) for n, after, who in rungs]


DEFAULT_WORK_ORDERS = _levels((1, timedelta(0), "engineer_on_duty"),
                              (2, timedelta(minutes=30), "engineering_manager"),
                              (3, timedelta(hours=2), "project_manager"))
DEFAULT_COMPLAINTS = _levels((1, timedelta(0), "customer_service"),
                             (2, timedelta(hours=2), "project_manager"),
                             (3, timedelta(days=1), "quality"))


class EscalationSpec(BaseModel):
    """The written section (site file `escalation:`): a ladder for work orders and one for
    unanswered complaints; a ladder left out keeps its default, an empty one escalates not."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    work_orders: list[Rung] = Field(default_factory=lambda: list(DEFAULT_WORK_ORDERS),
                                     max_length=9)
    complaints: list[Rung] = Field(default_factory=lambda: list(DEFAULT_COMPLAINTS),
                                    max_length=9)

    @field_validator("work_orders", "complaints")
    @classmethod
    def _climbs(cls, levels: list[Rung]) -> list[Rung]:
        numbers = [lv.level for lv in levels]
        if numbers != sorted(set(numbers)):
            raise ValueError("levels must be listed in rising order, each once")
        afters = [lv.after for lv in levels]
        if afters != sorted(afters):
            raise ValueError("a higher level cannot come sooner than a lower one (`after`)")
        return levels

    def stored(self) -> dict[str, Any]:
        """The JSON kept in the database (only what was written)."""
        return self.model_dump(mode="json", exclude_unset=True)


def parse_ladder(value: Any) -> EscalationSpec:
    """An escalation section from its YAML/JSON shape; EscalationError naming the field."""
    try:
        return EscalationSpec.model_validate(value or {})
    except ValidationError as exc:
        raise EscalationError("escalation: " + "; ".join(problems(exc, empty=""))) from None


def load_ladder(conn: psycopg.Connection[Any], site_id: str) -> EscalationSpec:
    """The site's ladders (the defaults when it has no `escalation:`)."""
    row = conn.execute("SELECT escalation FROM notification_settings WHERE site_id = %s",
                       (site_id,)).fetchone()
    return parse_ladder(row["escalation"] if row else None)


def save_ladder(conn: psycopg.Connection[Any], site_id: str, spec: EscalationSpec, *,
                now: datetime) -> None:
    """Store the site's `escalation:` section (replacing the previous one)."""
    save_section(conn, site_id, "escalation", spec.stored(), now=now)


def due_levels(ladder: Sequence[Rung], due_at: datetime, now: datetime) -> list[int]:
    """The levels a deadline has reached by `now`: 0 (overdue) once it passed, then each
    rung whose `after` is behind it."""
    if due_at > now:
        return []
    return [0, *(lv.level for lv in ladder if due_at + lv.after <= now)]


@dataclass(frozen=True)
class Escalated:
    """One step taken: a record's deadline reached a level (0: it became overdue)."""

    subject: str  # work_order or complaint
    id: int
    deadline: str  # respond, resolve or answer
    level: int


class _Sites:
    """Each site's ladders and receivers, read once per run."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.cache: dict[str, tuple[EscalationSpec, NotificationsSpec]] = {}

    def get(self, site_id: str) -> tuple[EscalationSpec, NotificationsSpec]:
        if site_id not in self.cache:
            row = self.conn.execute("SELECT notifications, escalation FROM"
                                    " notification_settings WHERE site_id = %s",
                                    (site_id,)).fetchone()
            self.cache[site_id] = (parse_ladder(row["escalation"] if row else None),
                                   parse_spec(row["notifications"] if row else None))
        return self.cache[site_id]


def escalate_due(conn: psycopg.Connection[Any], now: datetime) -> list[Escalated]:
    """Take every step of every ladder that is due and not taken yet (each exactly once)."""
    sites = _Sites(conn)
    return [*_work_orders(conn, sites, now), *_complaints(conn, sites, now)]


def _claim(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...]) -> bool:
    """Insert an escalation row; False when another transaction has (or had) it already."""
    return conn.execute(query + " ON CONFLICT DO NOTHING RETURNING 1", params).fetchone() \
        is not None


def _work_orders(conn: psycopg.Connection[Any], sites: _Sites, now: datetime
                 ) -> list[Escalated]:
    rows = conn.execute(
        "WITH due AS ("
        "  SELECT id, site_id, 'respond' AS deadline, respond_by AS due_at FROM work_orders"
        "   WHERE state = 'open' AND respond_by <= %(now)s"
        "  UNION ALL"
        "  SELECT id, site_id, 'resolve', resolve_by FROM work_orders"
        "   WHERE state = ANY(%(live)s) AND resolve_by <= %(now)s)"
        " SELECT due.*, coalesce((SELECT array_agg(e.level) FROM work_order_escalations e"
        "   WHERE e.work_order_id = due.id AND e.deadline = due.deadline"
        "   AND e.due_at = due.due_at), '{}') AS done"
        " FROM due ORDER BY id, deadline", {"now": now, "live": list(LIVE)}).fetchall()
    out = []
    for r in rows:
        ladder, receivers = sites.get(r["site_id"])
        by_level = {lv.level: lv for lv in ladder.work_orders}
        for level in due_levels(ladder.work_orders, r["due_at"], now):
            if level in r["done"] or not _claim(
                    conn, "INSERT INTO work_order_escalations (work_order_id, deadline, due_at,"
                    " level, escalated_at) VALUES (%s, %s, %s, %s, %s)",
                    (r["id"], r["deadline"], r["due_at"], level, now)):
                continue
            _step_work_order(conn, r, by_level.get(level), receivers, now)
            out.append(Escalated("work_order", int(r["id"]), str(r["deadline"]), level))
    return out


def _step_work_order(conn: psycopg.Connection[Any], due: Any, level: Rung | None,
                     receivers: NotificationsSpec, now: datetime) -> None:
    when = due["due_at"].isoformat()
    extra: dict[str, Any] = {"deadline": due["deadline"], "due_at": when}
    if level is None:  # level 0: the deadline passed
        wo = conn.execute("UPDATE work_orders SET overdue = true, updated_at = %s"
                          " WHERE id = %s RETURNING *", (now, due["id"])).fetchone()
        _wo_history(conn, due["id"], now, "overdue", f"{due['deadline']} deadline {when} passed")
        notify(conn, site_id=due["site_id"], subject="work_order", event="overdue",
               record=dict(wo or {}), now=now, extra=extra)
        return
    wo = conn.execute("SELECT * FROM work_orders WHERE id = %s", (due["id"],)).fetchone()
    names = reach(receivers, level.who, level.channel)
    _wo_history(conn, due["id"], now, "escalated", _note(level, due["deadline"], when, names))
    notify(conn, site_id=due["site_id"], subject="work_order", event="escalated",
           record=dict(wo or {}), now=now, audience=names,
           extra={**extra, "level": level.level, "who": level.who})


def _wo_history(conn: psycopg.Connection[Any], wo_id: int, now: datetime, action: str,
                note: str) -> None:
    conn.execute("INSERT INTO work_order_history (work_order_id, at, action, actor, note)"
                 " VALUES (%s, %s, %s, %s, %s)", (wo_id, now, action, ACTOR, note))


def _note(level: Rung, deadline: str, when: str, names: Sequence[str]) -> str:
    told = ", ".join(names) if names else "no receiver configured"
    return (f"level {level.level} ({', '.join(level.who)}): {deadline} deadline {when} "
            f"passed; told {told}")


def _complaints(conn: psycopg.Connection[Any], sites: _Sites, now: datetime
                ) -> list[Escalated]:
    rows = conn.execute(
        "SELECT c.id, c.site_id, c.answer_by AS due_at,"
        " coalesce((SELECT array_agg(e.level) FROM complaint_escalations e"
        "   WHERE e.complaint_id = c.id AND e.due_at = c.answer_by), '{}') AS done"
        " FROM complaints c WHERE c.answered_at IS NULL AND c.state <> 'closed'"
        " AND c.answer_by <= %s ORDER BY c.id", (now,)).fetchall()
    out = []
    for r in rows:
        ladder, receivers = sites.get(r["site_id"])
        by_level = {lv.level: lv for lv in ladder.complaints}
        for level in due_levels(ladder.complaints, r["due_at"], now):
            if level in r["done"] or not _claim(
                    conn, "INSERT INTO complaint_escalations (complaint_id, due_at, level,"
                    " escalated_at) VALUES (%s, %s, %s, %s)",
                    (r["id"], r["due_at"], level, now)):
                continue
            _step_complaint(conn, r, by_level.get(level), receivers, now)
            out.append(Escalated("complaint", int(r["id"]), "answer", level))
    return out


def _step_complaint(conn: psycopg.Connection[Any], due: Any, level: Rung | None,
                    receivers: NotificationsSpec, now: datetime) -> None:
    when = due["due_at"].isoformat()
    extra: dict[str, Any] = {"deadline": "answer", "due_at": when}
    if level is None:
        row = conn.execute("UPDATE complaints SET overdue = true, updated_at = %s"
                           " WHERE id = %s RETURNING *", (now, due["id"])).fetchone()
        complaints.history(conn, due["id"], at=now, action="overdue", actor=ACTOR,
                           note=f"answer deadline {when} passed unanswered")
        notify(conn, site_id=due["site_id"], subject="complaint", event="overdue",
               record=dict(row or {}), now=now, extra=extra)
        return
    row = conn.execute("SELECT * FROM complaints WHERE id = %s", (due["id"],)).fetchone()
    names = reach(receivers, level.who, level.channel)
    complaints.history(conn, due["id"], at=now, action="escalated", actor=ACTOR,
                       note=_note(level, "answer", when, names))
    notify(conn, site_id=due["site_id"], subject="complaint", event="escalated",
           record=dict(row or {}), now=now, audience=names,
           extra={**extra, "level": level.level, "who": level.who})
