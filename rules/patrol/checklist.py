"""Check an equipment scan's answers against its checkpoint's checklist (pure)."""

from __future__ import annotations

from typing import Any

from caretaker.severity import SEVERITY_RANK

# A checklist item's severity when it names none, and that of an `abnormal` scan whose
# answers are all in range (the guard saw something the checklist does not ask about).
DEFAULT_SEVERITY = "major"


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def _truthy(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    key = str(value).strip().lower()
    if key in ("true", "yes", "y", "1", "ok", "是"):
        return True
    if key in ("false", "no", "n", "0", "否"):
        return False
    return None


def item_severity(item: dict[str, Any]) -> str:
    """The severity of a finding on this checklist item (`severity:`, default major)."""
    severity = item.get("severity")
    return severity if isinstance(severity, str) and severity in SEVERITY_RANK \
        else DEFAULT_SEVERITY


def expected(item: dict[str, Any]) -> str:
    """What the item expects, as a person reads it: `0.3–0.6 MPa`, `≥ 80 %`, `true`."""
    if "expect" in item:
        return "yes" if item["expect"] else "no"
    unit = f" {item['unit']}" if item.get("unit") else ""
    if "min" in item and "max" in item:
        return f"{item['min']}–{item['max']}{unit}"
    if "min" in item:
        return f"≥ {item['min']}{unit}"
    return f"≤ {item['max']}{unit}"


def worst(problems: list[dict[str, Any]]) -> str:
    """The severity of a finding: its worst checklist answer's (the bare `abnormal` if alone)."""
    answers = [p["severity"] for p in problems if p.get("reading")] or [
        p.get("severity", DEFAULT_SEVERITY) for p in problems]
    return str(max(answers or [DEFAULT_SEVERITY], key=SEVERITY_RANK.__getitem__))


def describe(problem: dict[str, Any]) -> str:
    """One problem in a line: the item, the value and the range it should be in."""
    if not problem.get("reading"):
        return f"{problem.get('item')}: {problem.get('reason')}"
    value = problem.get("value")
    shown = ("yes" if value else "no") if isinstance(value, bool) else f"{value}"
    unit = f" {problem['unit']}" if problem.get("unit") and isinstance(value, int | float) \
        and not isinstance(value, bool) else ""
    return f"{problem['item']}: {shown}{unit}, expected {problem['expected']}"


def findings(checklist: list[dict[str, Any]], readings: dict[str, Any], result: str
             ) -> list[dict[str, Any]]:
    """The problems a scan reports: result 'abnormal', and each answer outside its range.

    Items: {"item", "reading", "min"?, "max"?, "expect"?, "unit"?, "severity"?}; an
    unanswered item is not a finding (the visit itself is what the inspection gap checks).
    Each problem names the item, the value, what was expected and its severity.
    """
    out: list[dict[str, Any]] = []
    if result == "abnormal":
        out.append({"item": "result", "reason": "reported abnormal",
                    "severity": DEFAULT_SEVERITY})
    for item in checklist or []:
        key = item.get("reading")
        if not key or key not in readings:
            continue
        value = readings[key]
        label = item.get("item", key)
        base = {"item": label, "reading": key, "severity": item_severity(item)}
        if "expect" in item:
            got = _truthy(value)
            if got is None or got != bool(item["expect"]):
                out.append({**base, "value": value, "expected": expected(item),
                            "reason": "unexpected answer"})
            continue
        if "min" not in item and "max" not in item:
            continue
        number = _number(value)
        unit = f" {item['unit']}" if item.get("unit") else ""
        base.update(expected=expected(item), **({"unit": item["unit"]} if unit else {}))
        if number is None:
            out.append({**base, "value": value, "reason": "not a number"})
        elif "min" in item and number < float(item["min"]):
            out.append({**base, "value": number, "min": item["min"],
                        "reason": f"{number:g}{unit} below minimum {item['min']}{unit}"})
        elif "max" in item and number > float(item["max"]):
            out.append({**base, "value": number, "max": item["max"],
                        "reason": f"{number:g}{unit} above maximum {item['max']}{unit}"})
    return out
