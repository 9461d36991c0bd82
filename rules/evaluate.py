"""The evaluate stage: pure functions from (rule, stored state, readings or now) to decisions.

State is a JSON-able dict kept per (rule, device) by the caller; `{}` is the idle state
(nothing pending, nothing firing) and needs no row. Times inside the state are epoch seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rules.model import (
    CountRule,
    Decision,
    OfflineRule,
    RateRule,
    Reading,
    Rule,
    ThresholdRule,
    compare,
)

State = dict[str, Any]
RATE_SAMPLES_MAX = 500  # a rate window keeps at most this many samples (thinned beyond)


def _epoch(when: datetime) -> float:
    return when.timestamp()


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:g}"


def describe(rule: Rule, value: float | None, *, device: str) -> str:
    """The alarm message: what was measured against what, on which device."""
    if rule.kind == "offline":
        return f"{device}: {rule.name}"
    op, threshold = rule.op, rule.threshold
    if rule.kind == "rate":
        window = rule.window.total_seconds()
        return (f"{device}: {rule.name}: {rule.metric} changed by {_fmt(value)} in "
                f"{window:g}s ({op} {_fmt(threshold)})")
    if rule.kind == "count":
        return (f"{device}: {rule.name}: {rule.metric} = {_fmt(value)} ({op} {_fmt(threshold)}) "
                f"{rule.count} readings in a row")
    hold = rule.for_.total_seconds()
    held = f" for {hold:g}s" if hold else ""
    return f"{device}: {rule.name}: {rule.metric} = {_fmt(value)} ({op} {_fmt(threshold)}){held}"


def _compact(state: State) -> State:
    """Drop keys that carry no information so an idle state is exactly {}."""
    out = {k: v for k, v in state.items() if v not in (None, 0, False, [])}
    if set(out) <= {"last_ts", "last_value"}:
        return {}
    return out


def evaluate_readings(rule: Rule, state: State, readings: list[Reading], *,
                      device: str) -> tuple[State, list[Decision]]:
    """Feed one device's readings of the rule's metric (any order) through the rule."""
    st = dict(state)
    decisions: list[Decision] = []
    for reading in sorted(readings, key=lambda r: r.ts):
        if reading.value is None:
            continue
        t = _epoch(reading.ts)
        if st.get("last_ts") is not None and t <= st["last_ts"]:
            continue  # late or repeated reading: state already reflects a newer one
        st["last_ts"] = t
        if rule.kind == "offline":
            continue  # an offline rule reads no metric
        if rule.kind == "count":
            _count_step(rule, st, t, reading.value, decisions, device)
            continue
        measure = reading.value
        if rule.kind == "rate":
            delta = _rate_step(rule, st, t, reading.value)
            if delta is None:
                continue
            measure = delta
        _threshold_step(rule, st, t, measure, decisions, device)
    return _compact(st), decisions


def _threshold_step(rule: ThresholdRule | RateRule, st: State, t: float, value: float,
                    decisions: list[Decision], device: str) -> None:
    op, threshold = rule.op, rule.threshold
    triggered = compare(value, op, threshold)
    st["last_value"] = value
    if not st.get("firing"):
        if not triggered:
            st["pending"] = None
            return
        if st.get("pending") is None:
            st["pending"] = t
        if t - st["pending"] >= rule.for_.total_seconds():
            _raise(rule, st, t, value, decisions, device)
        return
    if triggered:
        _update(rule, st, t, value, decisions, device)
    st["in_trigger"] = triggered
    still = compare(value, op, threshold if rule.clear is None else rule.clear)
    if still:
        st["clearing"] = None
        return
    if st.get("clearing") is None:
        st["clearing"] = t
    if t - st["clearing"] >= rule.clear_for.total_seconds():
        _clear(st, t, value, decisions)


def _count_step(rule: CountRule, st: State, t: float, value: float,
                decisions: list[Decision], device: str) -> None:
    triggered = compare(value, rule.op, rule.threshold)
    st["last_value"] = value
    if not st.get("firing"):
        st["streak"] = st.get("streak", 0) + 1 if triggered else 0
        if st["streak"] >= rule.count:
            st["streak"] = 0
            _raise(rule, st, t, value, decisions, device)
        return
    if triggered:
        _update(rule, st, t, value, decisions, device)
        st["in_trigger"] = True
        st["ok_streak"] = 0
        return
    st["in_trigger"] = False
    st["ok_streak"] = st.get("ok_streak", 0) + 1
    if st["ok_streak"] >= rule.clear_count:
        _clear(st, t, value, decisions)


def _rate_step(rule: RateRule, st: State, t: float, value: float) -> float | None:
    """Add a sample to the window; the change across the window, or None with one sample."""
    window = rule.window.total_seconds()
    samples: list[list[float]] = [s for s in st.get("samples", []) if s[0] >= t - window]
    samples.append([t, value])
    if len(samples) > RATE_SAMPLES_MAX:
        samples = samples[:1] + samples[2::2] + samples[-1:] if len(samples) > 2 else samples
    st["samples"] = samples
    if len(samples) < 2:
        return None
    return value - samples[0][1]


def _raise(rule: Rule, st: State, t: float, value: float | None,
           decisions: list[Decision], device: str) -> None:
    st.update(firing=True, pending=None, clearing=None, in_trigger=True, ok_streak=0)
    decisions.append(Decision("raise", _dt(t), value, message=describe(rule, value, device=device)))


def _update(rule: Rule, st: State, t: float, value: float, decisions: list[Decision],
            device: str) -> None:
    """A firing rule's condition holds again: a retrigger if it had stopped holding."""
    decisions.append(Decision("update", _dt(t), value, retrigger=not st.get("in_trigger"),
                              message=describe(rule, value, device=device)))


def _clear(st: State, t: float, value: float | None, decisions: list[Decision]) -> None:
    st.update(firing=False, pending=None, clearing=None, in_trigger=False, ok_streak=0,
              streak=0)
    decisions.append(Decision("clear", _dt(t), value))


def evaluate_time(rule: Rule, state: State, now: datetime, *,
                  device: str) -> tuple[State, list[Decision]]:
    """Let time pass with no new reading: a hold time or a clear hold may have run out."""
    st = dict(state)
    decisions: list[Decision] = []
    t = _epoch(now)
    hold, clear_hold = _holds(rule)
    if not st.get("firing"):
        pending = st.get("pending")
        if pending is not None and t - pending >= hold:
            _raise(rule, st, t, st.get("last_value"), decisions, device)
    else:
        clearing = st.get("clearing")
        if clearing is not None and t - clearing >= clear_hold:
            _clear(st, t, st.get("last_value"), decisions)
    return _compact(st), decisions


def _holds(rule: Rule) -> tuple[float, float]:
    """The rule's hold and clear-hold times in seconds (none for count and offline rules)."""
    if rule.kind in ("threshold", "rate"):
        return rule.for_.total_seconds(), rule.clear_for.total_seconds()
    return 0.0, 0.0


def due_at(rule: Rule, state: State) -> datetime | None:
    """When `evaluate_time` could next decide something for this state, if ever."""
    if rule.kind not in ("threshold", "rate"):
        return None
    hold, clear_hold = _holds(rule)
    if not state.get("firing") and state.get("pending") is not None:
        return _dt(state["pending"] + hold)
    if state.get("firing") and state.get("clearing") is not None:
        return _dt(state["clearing"] + clear_hold)
    return None


# The ingest moves devices.last_seen on only when it gains a second or more (fewer dead
# rows), so the stored value may trail the last message by up to this much: waiting it out
# means a device is never called silent before its timeout has really passed.
LAST_SEEN_PRECISION = 1.0


def offline_condition(rule: OfflineRule, *, last_seen: datetime | None, online: bool | None,
                      now: datetime) -> str | None:
    """Why a device counts as offline under this rule now (None if it does not)."""
    if online is False and rule.lwt:
        return "offline (status / Last Will)"
    silent_for = rule.timeout.total_seconds() + LAST_SEEN_PRECISION
    if last_seen is not None and (now - last_seen).total_seconds() >= silent_for:
        return f"no data since {last_seen.isoformat(timespec='seconds')}"
    return None


def evaluate_offline(rule: OfflineRule, state: State, *, last_seen: datetime | None,
                     online: bool | None, now: datetime,
                     device: str) -> tuple[State, list[Decision]]:
    """Decide an offline rule for one device from its last message time and online flag."""
    why = offline_condition(rule, last_seen=last_seen, online=online, now=now)
    firing = bool(state.get("firing"))
    if why is not None and not firing:
        return {"firing": True}, [Decision("raise", now, None,
                                           message=f"{describe(rule, None, device=device)}: {why}")]
    if why is None and firing:
        return {}, [Decision("clear", now, None)]
    return dict(state), []
