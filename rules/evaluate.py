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
    Rung,
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


def describe(rule: Rule, value: float | None, *, device: str, rung: Rung | None = None) -> str:
    """The alarm message: what was measured against what, on which device."""
    if rule.kind == "offline":
        return f"{device}: {rule.name}"
    if rule.kind == "count":
        return (f"{device}: {rule.name}: {rule.metric} = {_fmt(value)} ({rule.op} "
                f"{_fmt(rule.threshold)}) {rule.count} readings in a row")
    rung = rung or rule.ladder()[0]
    level = f", {rung.severity}" if rule.levels else ""
    if rule.kind == "rate":
        window = rule.window.total_seconds()
        return (f"{device}: {rule.name}: {rule.metric} changed by {_fmt(value)} in "
                f"{window:g}s ({rule.op} {_fmt(rung.threshold)}{level})")
    held = f" for {rung.hold:g}s" if rung.hold else ""
    return (f"{device}: {rule.name}: {rule.metric} = {_fmt(value)} ({rule.op} "
            f"{_fmt(rung.threshold)}{level}){held}")


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


# ---- the level ladder of threshold and rate rules ----------------------------------------
# State: `pending` lists, per level from the least severe, since when the value has met that
# level's threshold without a break (levels are nested: meeting one meets those below it);
# `firing` with `level` (index, 0 left out) is the alarm's current level; `clearing` since
# when the value has not met the current level's clear value.

def _pending(st: State) -> list[float]:
    """Per level, since when its threshold has been met (a stored scalar: one level)."""
    pending = st.get("pending")
    if pending is None:
        return []
    if isinstance(pending, int | float):
        return [float(pending)]
    return [float(p) for p in pending]


def _level(st: State) -> int:
    """The current level's index, -1 when not firing."""
    return int(st.get("level") or 0) if st.get("firing") else -1


def _held(ladder: tuple[Rung, ...], pending: list[float], t: float) -> int:
    """The worst level whose threshold has been met for its hold time by t; -1 if none."""
    for j in range(len(pending) - 1, -1, -1):
        if t - pending[j] >= ladder[j].hold:
            return j
    return -1


def _threshold_step(rule: ThresholdRule | RateRule, st: State, t: float, value: float,
                    decisions: list[Decision], device: str) -> None:
    ladder, op = rule.ladder(), rule.op
    st["last_value"] = value
    met = sum(1 for rung in ladder if compare(value, op, rung.threshold))
    pending = _pending(st)[:met]
    st["pending"] = pending + [t] * (met - len(pending))
    level = _level(st)
    held = _held(ladder, st["pending"], t)
    if level < 0:
        if held >= 0:
            _raise(rule, st, t, value, decisions, device, ladder[held])
            st["level"] = held
        return
    if held > level:
        _change(rule, st, t, value, decisions, device, ladder, held)
        return
    rung = ladder[level]
    triggered = compare(value, op, rung.threshold)
    if triggered:
        _update(rule, st, t, value, decisions, device, rung)
    st["in_trigger"] = triggered
    if compare(value, op, rung.clear):
        st["clearing"] = None
        return
    if st.get("clearing") is None:
        st["clearing"] = t
    if t - st["clearing"] >= rung.clear_hold:
        _step_down(rule, st, t, value, decisions, device, ladder)


def _change(rule: ThresholdRule | RateRule, st: State, t: float, value: float | None,
            decisions: list[Decision], device: str, ladder: tuple[Rung, ...],
            to: int) -> None:
    """Move a firing alarm to another level."""
    rung = ladder[to]
    st.update(level=to, clearing=None,
              in_trigger=value is not None and compare(value, rule.op, rung.threshold))
    decisions.append(Decision("level", _dt(t), value, severity=rung.severity,
                              message=describe(rule, value, device=device, rung=rung)))


def _step_down(rule: ThresholdRule | RateRule, st: State, t: float, value: float | None,
               decisions: list[Decision], device: str, ladder: tuple[Rung, ...]) -> None:
    """The current level's clear held: down to the worst level the value still meets, or clear."""
    below = [k for k in range(_level(st)) if value is not None
             and compare(value, rule.op, ladder[k].clear)]
    if below:
        _change(rule, st, t, value, decisions, device, ladder, below[-1])
    else:
        _clear(st, t, value, decisions)


def _count_step(rule: CountRule, st: State, t: float, value: float,
                decisions: list[Decision], device: str) -> None:
    triggered = compare(value, rule.op, rule.threshold)
    st["last_value"] = value
    if not st.get("firing"):
        st["streak"] = st.get("streak", 0) + 1 if triggered else 0
        if st["streak"] >= rule.count:
            st["streak"] = 0
            _raise(rule, st, t, value, decisions, device, None)
        return
    if triggered:
        _update(rule, st, t, value, decisions, device, None)
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
           decisions: list[Decision], device: str, rung: Rung | None) -> None:
    st.update(firing=True, clearing=None, in_trigger=True, ok_streak=0)
    decisions.append(Decision("raise", _dt(t), value,
                              message=describe(rule, value, device=device, rung=rung),
                              severity=rung.severity if rung else rule.severity))


def _update(rule: Rule, st: State, t: float, value: float, decisions: list[Decision],
            device: str, rung: Rung | None) -> None:
    """A firing rule's condition holds again: a retrigger if it had stopped holding."""
    decisions.append(Decision("update", _dt(t), value, retrigger=not st.get("in_trigger"),
                              message=describe(rule, value, device=device, rung=rung)))


def _clear(st: State, t: float, value: float | None, decisions: list[Decision]) -> None:
    st.update(firing=False, level=0, clearing=None, in_trigger=False, ok_streak=0, streak=0)
    decisions.append(Decision("clear", _dt(t), value))


def evaluate_time(rule: Rule, state: State, now: datetime, *,
                  device: str) -> tuple[State, list[Decision]]:
    """Let time pass with no new reading: a hold time or a clear hold may have run out."""
    st = dict(state)
    decisions: list[Decision] = []
    if rule.kind not in ("threshold", "rate"):
        return _compact(st), decisions  # count and offline rules hold nothing over time
    t = _epoch(now)
    ladder = rule.ladder()
    level = _level(st)
    held = _held(ladder, _pending(st), t)
    value = st.get("last_value")
    if level < 0:
        if held >= 0:
            _raise(rule, st, t, value, decisions, device, ladder[held])
            st["level"] = held
    elif held > level:
        _change(rule, st, t, value, decisions, device, ladder, held)
    else:
        clearing = st.get("clearing")
        if clearing is not None and t - clearing >= ladder[level].clear_hold:
            _step_down(rule, st, t, value, decisions, device, ladder)
    return _compact(st), decisions


def due_at(rule: Rule, state: State) -> datetime | None:
    """When `evaluate_time` could next decide something for this state, if ever."""
    if rule.kind not in ("threshold", "rate"):
        return None
    ladder = rule.ladder()
    level = _level(state)
    pending = _pending(state)
    times = [pending[j] + ladder[j].hold for j in range(level + 1, len(pending))]
    if level >= 0 and state.get("clearing") is not None:
        times.append(state["clearing"] + ladder[level].clear_hold)
    return _dt(min(times)) if times else None


# The ingest moves devices.last_seen on only when it gains a second or more (fewer dead
# rows), so the stored value may trail the last message by up to this much: waiting it out
# means a device is never called silent before its timeout has really passed.
LAST_SEEN_PRECISION = 1.0


def offline_condition(rule: OfflineRule, *, last_seen: datetime | None, online: bool | None,
                      now: datetime, planned: bool = False) -> str | None:
    """Why a device counts as offline under this rule now (None if it does not).

    `planned`: the device announced an orderly stop (it is offline, not faulty): neither
    that nor the silence after it raises the alarm; a Last Will or plain `offline` does.
    """
    if online is False and planned:
        return None
    if online is False and rule.lwt:
        return "offline (status / Last Will)"
    silent_for = rule.timeout.total_seconds() + LAST_SEEN_PRECISION
    if last_seen is not None and (now - last_seen).total_seconds() >= silent_for:
        return f"no data since {last_seen.isoformat(timespec='seconds')}"
    return None


def evaluate_offline(rule: OfflineRule, state: State, *, last_seen: datetime | None,
                     online: bool | None, now: datetime, device: str,
                     planned: bool = False) -> tuple[State, list[Decision]]:
    """Decide an offline rule for one device from its last message time and online flag."""
    why = offline_condition(rule, last_seen=last_seen, online=online, now=now, planned=planned)
    firing = bool(state.get("firing"))
    if why is not None and not firing:
        return {"firing": True}, [Decision("raise", now, None,
                                           message=f"{describe(rule, None, device=device)}: {why}")]
    if why is None and firing:
        return {}, [Decision("clear", now, None)]
    return dict(state), []
