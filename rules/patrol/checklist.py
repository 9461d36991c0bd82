"""Check an equipment scan's answers against its checkpoint's checklist (pure)."""

from __future__ import annotations

from typing import Any


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


def findings(checklist: list[dict[str, Any]], readings: dict[str, Any], result: str
             ) -> list[dict[str, Any]]:
    """The problems a scan reports: result 'abnormal', and each answer outside its range.

    Items: {"item", "reading", "min"?, "max"?, "expect"?, "unit"?}; an unanswered item is
    not a finding (the visit itself is what the inspection gap checks).
    """
    out: list[dict[str, Any]] = []
    if result == "abnormal":
        out.append({"item": "result", "reason": "reported abnormal"})
    for item in checklist or []:
        key = item.get("reading")
        if not key or key not in readings:
            continue
        value = readings[key]
        label = item.get("item", key)
        if "expect" in item:
            got = _truthy(value)
            if got is None or got != bool(item["expect"]):
                out.append({"item": label, "reading": key, "value": value,
                            "expected": item["expect"], "reason": "unexpected answer"})
            continue
        if "min" not in item and "max" not in item:
            continue
        number = _number(value)
        unit = f" {item['unit']}" if item.get("unit") else ""
        if number is None:
            out.append({"item": label, "reading": key, "value": value,
                        "reason": "not a number"})
        elif "min" in item and number < float(item["min"]):
            out.append({"item": label, "reading": key, "value": number, "min": item["min"],
                        "reason": f"{number:g}{unit} below minimum {item['min']}{unit}"})
        elif "max" in item and number > float(item["max"]):
            out.append({"item": label, "reading": key, "value": number, "max": item["max"],
                        "reason": f"{number:g}{unit} above maximum {item['max']}{unit}"})
    return out
