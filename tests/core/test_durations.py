"""The one duration grammar: what it reads, what it refuses, how it writes, as a pydantic type."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import BaseModel, ValidationError

from caretaker.durations import Duration, format_duration, parse_duration, seconds
from caretaker.errors import Invalid


@pytest.mark.parametrize(("text", "expected"), [
    ("90s", 90), ("10m", 600), ("1h30m", 5400), ("7d", 7 * 86400), ("2w", 14 * 86400),
    ("1.5h", 5400), ("45", 45), (" 1h 30m ", 5400), ("1H", 3600), (2.5, 2.5), (0, 0),
    ("0s", 0), (timedelta(minutes=3), 180), ("1d2h3m4s", 93784),
])
def test_accepted_forms(text: object, expected: float) -> None:
    assert seconds(text) == expected
    assert parse_duration(text) == timedelta(seconds=expected)


@pytest.mark.parametrize("bad", [
    "10 minutes", "m", "-5s", "-5", "1x", "", "soon", "30m1h", "1h1h", None, True, "nan",
    "inf", 1e20, -1, "9" * 400, "1" * 100 + "s",
])
def test_refused_forms_name_the_field(bad: object) -> None:
    with pytest.raises(Invalid, match=r"^every: "):
        parse_duration(bad, what="every")


def test_bounded_to_a_hundred_years() -> None:
    assert seconds(100 * 365 * 86400) == 100 * 365 * 86400
    with pytest.raises(Invalid, match="100 years"):
        seconds(100 * 365 * 86400 + 1)


@pytest.mark.parametrize(("value", "written"), [
    (timedelta(hours=2), "2h"), (timedelta(minutes=20), "20m"), (5400, "1h30m"), (45, "45s"),
    (0, "0s"), (timedelta(days=1, seconds=1), "1d1s"), (1.5, "1.5s"),
])
def test_written_in_shortest_form_that_reads_back(value: timedelta | float, written: str
                                                  ) -> None:
    assert format_duration(value) == written
    assert parse_duration(written) == parse_duration(value)


class Spec(BaseModel):
    hold: Duration


def test_pydantic_type_reads_grammar_and_writes_shortest_form() -> None:
    spec = Spec.model_validate({"hold": "1h30m"})
    assert spec.hold == timedelta(minutes=90)
    assert spec.model_dump() == {"hold": timedelta(minutes=90)}
    assert spec.model_dump(mode="json") == {"hold": "1h30m"}
    assert Spec.model_validate({"hold": 30}).hold == timedelta(seconds=30)


def test_pydantic_type_refuses_with_the_field_named() -> None:
    with pytest.raises(ValidationError) as err:
        Spec.model_validate({"hold": 1e20})
    (error,) = err.value.errors()
    assert error["loc"] == ("hold",) and "100 years" in error["msg"]
    schema = Spec.model_json_schema()["properties"]["hold"]
    assert {s["type"] for s in schema["anyOf"]} == {"string", "number"}
