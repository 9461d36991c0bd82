"""Follow-up visits (回访): each attempt a record, dissatisfaction sends the work back, the queue.

Seed 004 (业主回访作业指导书): the visit is made once the work is done, by phone, in person or
by app; when the resident is not satisfied the work is redone and visited again; supervisors
spot-check visits (三级抽查). A ticket's visit is *concluded* by a reached or refused attempt
made after its latest resolution (a complaint's latest answer); unreachable attempts are
retried after the policy's interval until its maximum number of attempts.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal, LiteralString

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from caretaker import errors
from caretaker.paging import Where, fetch_page
from tickets import complaints, work_orders
from tickets.follow_up_policy import FollowUpPolicy, load_policies, load_policy
from tickets.notify import notify

Kind = Literal["work_order", "complaint"]
CHANNELS = ("phone", "visit", "app", "wechat")
OUTCOMES = ("reached", "unreachable", "refused")
CHECK_RESULTS = ("confirmed", "not_confirmed")
# The states in which a ticket's work is done, so it may be visited.
DONE = {"work_order": ("resolved", "closed"), "complaint": ("answered", "closed")}
COLUMN = {"work_order": "work_order_id", "complaint": "complaint_id"}


class FollowUpError(errors.Conflict):
    """A visit the ticket's current state does not allow."""


class Invalid(errors.Invalid, FollowUpError):
    """A visit's fields that cannot be used together."""


class NotFound(errors.NotFound, FollowUpError):
    """No such visit (in the caller's scope)."""


class Forbidden(errors.Forbidden, FollowUpError):
    """A spot check by the person who made the visit."""


def check_attempt(outcome: str, satisfaction: int | None) -> None:
    """Refuse an attempt whose satisfaction does not fit its outcome (given iff reached)."""
    if outcome not in OUTCOMES:
        raise Invalid(f"outcome must be one of {', '.join(OUTCOMES)}")
    if outcome == "reached" and satisfaction is None:
        raise Invalid("a reached visit records the resident's satisfaction, 1 to 5")
    if outcome != "reached" and satisfaction is not None:
        raise Invalid(f"an {outcome} visit has no satisfaction (nobody was asked)")
    if satisfaction is not None and not 1 <= satisfaction <= 5:
        raise Invalid("satisfaction must be 1 to 5")


def next_attempt(outcome: str, attempts: int, at: datetime,
                 policy: FollowUpPolicy) -> datetime | None:
    """When the next attempt is due after this one (the attempts-th since the work was done).

    Only an unreachable attempt asks for another, and only below the policy's maximum.
    """
    if outcome != "unreachable" or attempts >= policy.max_attempts:
        return None
    return at + policy.retry_after


def find_ticket(conn: psycopg.Connection[Any], kind: Kind, ticket_id: int, *,
            scope: str | None, lock: bool = False) -> dict[str, Any]:
    """The ticket a visit is about (locked if asked); NotFound outside the caller's site."""
    if kind == "complaint":
        return complaints.row(conn, ticket_id, lock=lock, scope=scope)
    query = "SELECT * FROM work_orders WHERE id = %s AND (%s::text IS NULL OR site_id = %s)"
    row = conn.execute(query + (" FOR UPDATE" if lock else ""),
                       (ticket_id, scope, scope)).fetchone()
    if row is None:
        raise work_orders.NotFound(f"work order {ticket_id} not found")
    return dict(row)


def _done_at(conn: psycopg.Connection[Any], kind: Kind, ticket: dict[str, Any]) -> datetime:
    """When the ticket's work was last done: attempts from then on count towards this visit."""
    if kind == "work_order":
        done: datetime = ticket["resolved_at"] or ticket["closed_at"] or ticket["updated_at"]
        return done
    row = conn.execute(_DONE_SQL_ONE, (ticket["id"],)).fetchone()
    found: datetime | None = row["done_at"] if row else None
    return found or ticket["answered_at"] or ticket["closed_at"] or ticket["updated_at"]


# A complaint is done when last answered, or closed without an answer before it.
_COMPLAINT_DONE = ("SELECT max(h.at) FROM complaint_history h WHERE h.complaint_id = c.id"
                   " AND (h.to_state = 'answered'"
                   "      OR (h.to_state = 'closed' AND h.from_state <> 'answered'))")
_DONE_SQL_ONE = sql.SQL("SELECT ({}) AS done_at FROM complaints c WHERE c.id = %s").format(
    sql.SQL(_COMPLAINT_DONE))


def record(conn: psycopg.Connection[Any], kind: Kind, ticket_id: int, *, actor: str,
           now: datetime, channel: str, outcome: str, opinion: str | None = None,
           satisfaction: int | None = None, scope: str | None = None) -> dict[str, Any]:
    """Record one visit attempt; a dissatisfied one sends the work back. The visit, with
    `attempt` (its number since the work was done), `next_attempt_at` and `reworked`."""
    check_attempt(outcome, satisfaction)
    if channel not in CHANNELS:
        raise Invalid(f"channel must be one of {', '.join(CHANNELS)}")
    ticket = find_ticket(conn, kind, ticket_id, scope=scope, lock=True)
    what = kind.replace("_", " ")
    if ticket["state"] not in DONE[kind]:
        raise FollowUpError(f"a {what} that is {ticket['state']} cannot be followed up yet: "
                            f"it must be {' or '.join(DONE[kind])}")
    site_id = ticket["site_id"]
    policy = load_policy(conn, site_id)
    since = _done_at(conn, kind, ticket)
    visit = conn.execute(
        sql.SQL("INSERT INTO follow_ups (site_id, {}, at, actor, channel, outcome, opinion,"
                " satisfaction) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING *").format(
            sql.Identifier(COLUMN[kind])),
        (site_id, ticket_id, now, actor, channel, outcome, opinion, satisfaction)).fetchone()
    assert visit is not None
    out = dict(visit)
    attempts = conn.execute(
        sql.SQL("SELECT count(*) AS n FROM follow_ups WHERE {} = %s AND at >= %s").format(
            sql.Identifier(COLUMN[kind])), (ticket_id, since)).fetchone()
    out["attempt"] = int(attempts["n"]) if attempts else 1
    out["next_attempt_at"] = next_attempt(outcome, out["attempt"], now, policy)
    out["reworked"] = policy.dissatisfied(satisfaction)
    if out["reworked"]:
        _rework(conn, kind, ticket_id, out, actor=actor, now=now)
    return out


def _rework(conn: psycopg.Connection[Any], kind: Kind, ticket_id: int, visit: dict[str, Any],
            *, actor: str, now: datetime) -> None:
    """Send the work back after a dissatisfied visit, and tell those who do it."""
    note = (f"follow-up visit #{visit['id']}: satisfaction {visit['satisfaction']}"
            + (f": {visit['opinion']}" if visit["opinion"] else ""))
    updated: dict[str, Any]
    if kind == "work_order":
        updated = work_orders.transition(conn, ticket_id, "rework", actor=actor, now=now,
                                         note=note)
    else:
        updated = complaints.step(conn, ticket_id, "rework", actor=actor, now=now, note=note)
    notify(conn, site_id=updated["site_id"], subject=kind, event="opened", record=updated,
           now=now, extra={"rework": True, "follow_up": visit["id"],
                           "satisfaction": visit["satisfaction"]})


def visits(conn: psycopg.Connection[Any], kind: Kind, ticket_id: int, *, scope: str | None,
           limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """One page of a ticket's visits, oldest first, and how many it has."""
    find_ticket(conn, kind, ticket_id, scope=scope)
    where = Where()
    where.equals(COLUMN[kind], ticket_id)
    return fetch_page(conn, "follow_ups", where, order="at, id", limit=limit, offset=offset)


VISIT_FILTERS = {"site": "site_id", "outcome": "outcome", "actor": "actor"}


def list_visits(conn: psycopg.Connection[Any], *, filters: dict[str, Any], scope: str | None,
                checked: bool | None, since: datetime | None, until: datetime | None,
                limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """One page of visits across tickets, newest first (e.g. those not spot-checked yet)."""
    where = Where()
    where.equals_all(filters, VISIT_FILTERS)
    where.equals("site_id", scope)
    where.within("at", since, until)
    if checked is True:
        where.add("checked_at IS NOT NULL")
    elif checked is False:
        where.add("checked_at IS NULL")
    return fetch_page(conn, "follow_ups", where, order="at DESC, id DESC", limit=limit,
                      offset=offset)


def spot_check(conn: psycopg.Connection[Any], visit_id: int, *, actor: str, now: datetime,
               result: str, note: str | None = None, scope: str | None = None
               ) -> dict[str, Any]:
    """Record a supervisor's spot check (三级抽查) of a visit: once, by someone else."""
    if result not in CHECK_RESULTS:
        raise Invalid(f"result must be one of {', '.join(CHECK_RESULTS)}")
    row = conn.execute("SELECT * FROM follow_ups WHERE id = %s"
                       " AND (%s::text IS NULL OR site_id = %s) FOR UPDATE",
                       (visit_id, scope, scope)).fetchone()
    if row is None:
        raise NotFound(f"follow-up visit {visit_id} not found")
    if row["checked_at"] is not None:
        raise FollowUpError(f"follow-up visit {visit_id} was checked already by "
                            f"{row['checked_by']} at {row['checked_at'].isoformat()}")
    if row["actor"] == actor:
        raise Forbidden("a visit is spot-checked by someone other than who made it")
    updated = conn.execute(
        "UPDATE follow_ups SET checked_by = %s, checked_at = %s, check_result = %s,"
        " check_note = %s WHERE id = %s RETURNING *",
        (actor, now, result, note, visit_id)).fetchone()
    return dict(updated or {})


# ---- the queue -------------------------------------------------------------------------

# Each site's policy as rows. Candidates first (done within the policy's give_up_after, so
# the queue reads recent tickets only); then, for shares below 100 %, each candidate's rank
# among the tickets of its site and category (work orders) or its site (complaints) opened in
# the same month of the site's time zone, by id: the share a policy picks never changes once
# a ticket exists, and ranking reads only the candidates' months.
_QUEUE = """
WITH pol AS (
    SELECT p.*, s.timezone,
           %(now)s::timestamptz - make_interval(secs => p.give_up_after) AS horizon
      FROM jsonb_to_recordset(%(sites)s) AS p(
           site_id text, due_within double precision, retry_after double precision,
           give_up_after double precision, max_attempts integer, sources text[],
           complaints integer)
      JOIN sites s ON s.id = p.site_id
), rates AS (
    SELECT * FROM jsonb_to_recordset(%(rates)s) AS r(site_id text, category text, rate integer)
), wo AS (
    SELECT w.id, w.site_id, w.category, w.title, w.reporter_name, w.reporter_unit,
           w.reporter_phone, w.state, w.rework_count, w.resolved_at, r.rate,
           date_trunc('month', w.opened_at AT TIME ZONE pol.timezone) AS month
      FROM work_orders w
      JOIN pol ON pol.site_id = w.site_id AND w.source = ANY (pol.sources)
      JOIN rates r ON r.site_id = w.site_id AND r.category = w.category AND r.rate > 0
     WHERE w.state IN ('resolved', 'closed') AND w.resolved_at >= pol.horizon
       AND w.resolved_at >= %(earliest)s  -- the same bound as a constant, for the index
), wo_rank AS (
    SELECT w.id, row_number() OVER (PARTITION BY m.site_id, m.category, m.month
                                    ORDER BY w.id) AS rank
      FROM (SELECT DISTINCT site_id, category, month FROM wo WHERE rate < 100) m
      JOIN pol ON pol.site_id = m.site_id
      JOIN work_orders w ON w.site_id = m.site_id AND w.category = m.category
           AND w.opened_at >= m.month AT TIME ZONE pol.timezone
           AND w.opened_at < (m.month + interval '1 month') AT TIME ZONE pol.timezone
           AND w.source = ANY (pol.sources)
), co AS (
    SELECT c.id, c.site_id, c.number, c.description, c.category, c.complainant_name,
           c.complainant_unit, c.complainant_phone, c.state, c.rework_count,
           coalesce(({complaint_done}), c.answered_at, c.closed_at) AS done_at,
           pol.complaints AS rate,
           date_trunc('month', c.opened_at AT TIME ZONE pol.timezone) AS month
      FROM complaints c JOIN pol ON pol.site_id = c.site_id AND pol.complaints > 0
     -- done_at <= updated_at: the cheap bound first
     WHERE (c.state = 'answered' OR (c.state = 'closed' AND c.resolution = 'handled'))
       AND c.updated_at >= pol.horizon
), co_rank AS (
    SELECT c.id, row_number() OVER (PARTITION BY m.site_id, m.month ORDER BY c.id) AS rank
      FROM (SELECT DISTINCT site_id, month FROM co WHERE rate < 100) m
      JOIN pol ON pol.site_id = m.site_id
      JOIN complaints c ON c.site_id = m.site_id
           AND c.opened_at >= m.month AT TIME ZONE pol.timezone
           AND c.opened_at < (m.month + interval '1 month') AT TIME ZONE pol.timezone
), items AS (
    SELECT 'work_order' AS kind, wo.id, wo.site_id, NULL::text AS number, wo.title,
           wo.category, wo.reporter_name AS contact_name, wo.reporter_unit AS contact_unit,
           wo.reporter_phone AS contact_phone, wo.state, wo.rework_count,
           wo.resolved_at AS done_at, a.attempts, a.last_at, pol.retry_after,
           pol.due_within
      FROM wo JOIN pol ON pol.site_id = wo.site_id
      LEFT JOIN wo_rank k ON k.id = wo.id
     CROSS JOIN LATERAL (
           SELECT count(*) AS attempts, max(f.at) AS last_at,
                  coalesce(bool_or(f.outcome <> 'unreachable'), false) AS concluded
             FROM follow_ups f WHERE f.work_order_id = wo.id AND f.at >= wo.resolved_at) a
     WHERE (wo.rate >= 100
            OR (k.rank * wo.rate + 99) / 100 > ((k.rank - 1) * wo.rate + 99) / 100)
       AND NOT a.concluded AND a.attempts < pol.max_attempts
    UNION ALL
    SELECT 'complaint', co.id, co.site_id, co.number, left(co.description, 200),
           co.category, co.complainant_name, co.complainant_unit, co.complainant_phone,
           co.state, co.rework_count, co.done_at, a.attempts, a.last_at, pol.retry_after,
           pol.due_within
      FROM co JOIN pol ON pol.site_id = co.site_id
      LEFT JOIN co_rank k ON k.id = co.id
     CROSS JOIN LATERAL (
           SELECT count(*) AS attempts, max(f.at) AS last_at,
                  coalesce(bool_or(f.outcome <> 'unreachable'), false) AS concluded
             FROM follow_ups f WHERE f.complaint_id = co.id AND f.at >= co.done_at) a
     WHERE co.done_at >= pol.horizon
       AND (co.rate >= 100
            OR (k.rank * co.rate + 99) / 100 > ((k.rank - 1) * co.rate + 99) / 100)
       AND NOT a.concluded AND a.attempts < pol.max_attempts
), queue AS (
    SELECT items.*,
           CASE WHEN attempts = 0 THEN done_at
                ELSE last_at + make_interval(secs => retry_after) END AS due_at,
           done_at + make_interval(secs => due_within) AS visit_by
      FROM items
)
"""


def queue(conn: psycopg.Connection[Any], *, scope: str | None, now: datetime,
          due: bool | None = None, kind: Kind | None = None, overdue: bool | None = None,
          limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The follow-up queue: tickets whose visit is pending, the longest due first.

    `due=True`: those whose next attempt is due now; False: those waiting for a retry.
    A ticket is pending when its category's share picks it (`picked`, by its rank among the
    tickets of its month), its work was done within `give_up_after`, no reached or refused
    visit came after, and it has fewer unreachable attempts than the policy's maximum.
    `overdue`: past the policy's `due_within` from when it was done.
    """
    policies = load_policies(conn, scope)
    sites = [{"site_id": site, "due_within": p.due_within.total_seconds(),
              "retry_after": p.retry_after.total_seconds(),
              "give_up_after": p.give_up_after.total_seconds(), "max_attempts": p.max_attempts,
              "sources": list(p.sources), "complaints": p.complaints}
             for site, p in policies.items()]
    rates = [{"site_id": site, "category": category, "rate": rate}
             for site, p in policies.items() for category, rate in p.all_rates().items()]
    conds: list[LiteralString] = []
    if due is not None:
        conds.append("due_at <= %(now)s" if due else "due_at > %(now)s")
    if overdue is not None:
        conds.append("visit_by < %(now)s" if overdue else "visit_by >= %(now)s")
    if kind is not None:
        conds.append("kind = %(kind)s")
    where = sql.SQL(" WHERE " + " AND ".join(conds) if conds else "")
    head = sql.SQL(_QUEUE).format(complaint_done=sql.SQL(_COMPLAINT_DONE))
    earliest = now - max((p.give_up_after for p in policies.values()), default=timedelta(0))
    params = {"sites": Jsonb(sites), "rates": Jsonb(rates), "now": now, "kind": kind,
              "earliest": earliest, "limit": limit, "offset": offset}
    # The page and the total in one pass; a page past the end asks for the total alone.
    rows = conn.execute(
        head + sql.SQL("SELECT *, count(*) OVER () AS total FROM queue") + where
        + sql.SQL(" ORDER BY due_at, kind, id LIMIT %(limit)s OFFSET %(offset)s"),
        params).fetchall()
    if rows:
        total = int(rows[0]["total"])
    else:
        found = conn.execute(head + sql.SQL("SELECT count(*) AS n FROM queue") + where,
                             params).fetchone()
        total = int(found["n"]) if found else 0
    items = []
    for r in rows:
        item = dict(r)
        item["overdue"] = item["visit_by"] < now
        items.append(item)
    return items, total
