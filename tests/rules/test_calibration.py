"""Calibration decisions without I/O: tolerances, comparisons, runs of disagreements."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from caretaker.site_config import SiteConfigError, parse
from rules.calibration import (
    Calibration,
    Comparison,
    Link,
    Tolerance,
    check_against_checklist,
    compare,
    decide,
    manual_number,
    streak,
)
from stack.app import SECTIONS
from tests.patrol.helpers import site_doc

LINKS = TypeAdapter(Calibration)


def link(**kw: Any) -> Link:
    return Link.model_validate({"checkpoint": "e1", "reading": "pressure",
                                "metric": "outlet_pressure", "tolerance": 0.05, **kw})


def test_tolerance_is_absolute_or_a_percentage() -> None:
    assert link().tolerance == Tolerance(0.05)
    assert link(tolerance="5%").tolerance == Tolerance(5.0, percent=True)
    assert link(tolerance=" 2.5 % ").tolerance == Tolerance(2.5, percent=True)
    assert link(tolerance="0.1").tolerance == Tolerance(0.1)
    assert Tolerance(5.0, percent=True).allowed(-0.4) == pytest.approx(0.02)
    assert Tolerance(0.05).allowed(123.0) == 0.05
    for bad in ("five", -0.1, "150%", True, "nan", None):
        with pytest.raises(ValidationError, match="tolerance"):
            link(tolerance=bad)
    assert link(tolerance="5%").model_dump(mode="json")["tolerance"] == "5%"
    assert link().model_dump(mode="json")["tolerance"] == 0.05


def test_link_defaults_and_bounds() -> None:
    one = link()
    assert (one.repeat, one.within, one.severity, one.device) == (
        2, timedelta(minutes=10), "minor", None)
    assert link(within="30s", repeat=1).within == timedelta(seconds=30)
    for bad in ({"within": "0s"}, {"within": "2d"}, {"repeat": 0}, {"severity": "warning"},
                {"surprise": 1}, {"reading": "has space"}):
        with pytest.raises(ValidationError):
            link(**bad)
    with pytest.raises(ValidationError, match="linked twice: e1/pressure"):
        LINKS.validate_python([link().model_dump(), link(metric="other").model_dump()])


def test_compare_agreement_disagreement_and_no_sensor_value() -> None:
    assert compare(0.45, 0.40, Tolerance(0.05)) == Comparison(
        "agreed", pytest.approx(0.05), 0.05)   # on the boundary: agrees
    assert compare(0.46, 0.40, Tolerance(0.05)).outcome == "disagreed"
    assert compare(0.34, 0.40, Tolerance(0.05)).difference == pytest.approx(-0.06)
    assert compare(0.34, 0.40, Tolerance(20, percent=True)).outcome == "agreed"
    assert compare(0.30, 0.40, Tolerance(20, percent=True)).outcome == "disagreed"
    assert compare(0.45, None, Tolerance(0.05)) == Comparison("no_sensor_value")
    assert compare(0.45, float("nan"), Tolerance(0.05)).outcome == "no_sensor_value"


def test_manual_answers_that_are_numbers() -> None:
    assert [manual_number(v) for v in (0.42, "0.42", 3, True, None, "high", "inf")] == [
        0.42, 0.42, 3.0, None, None, None, None]


def test_streak_counts_disagreements_in_a_row_skipping_missing_sensor_values() -> None:
    assert streak("agreed", ["disagreed", "disagreed"]) == 0
    assert streak("no_sensor_value", ["disagreed"]) == 0
    assert streak("disagreed", []) == 1
    assert streak("disagreed", ["disagreed", "agreed", "disagreed"]) == 2
    assert streak("disagreed", ["no_sensor_value", "disagreed", "no_sensor_value",
                                "disagreed"]) == 3
    assert streak("disagreed", ["agreed", "disagreed"]) == 1


@pytest.mark.parametrize(("outcome", "run", "repeat", "live", "action"), [
    ("disagreed", 1, 2, False, "none"),            # the first: not yet
    ("disagreed", 2, 2, False, "open"),            # the Nth in a row opens
    ("disagreed", 5, 2, False, "open"),            # (the ticket was closed since)
    ("disagreed", 1, 1, False, "open"),
    ("disagreed", 3, 2, True, "note_disagreed"),   # one ticket per device+metric while live
    ("disagreed", 1, 2, True, "note_disagreed"),
    ("agreed", 0, 2, True, "note_agreed"),         # agreement afterwards is noted
    ("agreed", 0, 2, False, "none"),
    ("no_sensor_value", 0, 2, True, "none"),
])
def test_decide(outcome: Any, run: int, repeat: int, live: bool, action: str) -> None:
    assert decide(outcome, run, repeat, live_ticket=live) == action


def test_link_against_its_checkpoint() -> None:
    cp = {"kind": "equipment", "device_id": "d1",
          "checklist": [{"item": "pressure", "reading": "pressure", "min": 0.3}]}
    assert check_against_checklist(link(), cp) is None
    assert "does not exist" in str(check_against_checklist(link(), None))
    assert "not an equipment" in str(check_against_checklist(link(), {**cp, "kind": "patrol"}))
    assert "give `device:`" in str(check_against_checklist(link(), {**cp, "device_id": None}))
    assert check_against_checklist(link(device="d2"), {**cp, "device_id": None}) is None
    why = str(check_against_checklist(link(reading="temp"), cp))
    assert "no checklist item with reading 'temp'" in why and "pressure" in why


def test_the_site_file_section_names_the_bad_field() -> None:
    doc = {**site_doc(), "calibration": [
        {"checkpoint": "e1", "reading": "pressure", "metric": "outlet_pressure",
         "tolerance": "lots"}]}
    with pytest.raises(SiteConfigError, match=r"calibration\[0\]\.tolerance: 'lots' is not"):
        parse(doc, SECTIONS)
    doc["calibration"][0]["tolerance"] = "5%"
    assert parse(doc, SECTIONS).extra_sections["calibration"][0].tolerance.percent
