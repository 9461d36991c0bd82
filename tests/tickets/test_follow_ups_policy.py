"""The pure parts of follow-up visits: the policy, the share a category picks, attempts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from tickets.follow_up_policy import FollowUpPolicyError, parse_policy, picked
from tickets.follow_ups import Invalid, check_attempt, next_attempt

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def test_defaults_follow_the_centres_manual() -> None:
    policy = parse_policy(None)
    assert policy.all_rates() == {"居家维修": 100, "公区维修": 90, "整改": 90, "设备": 90,
                                  "其他": 90}
    assert policy.complaints == 100 and policy.sources == ["manual"]
    assert policy.due_within == timedelta(days=3) and policy.retry_after == timedelta(days=1)
    assert policy.max_attempts == 3 and policy.dissatisfied_at_most == 2
    assert policy.give_up_after == timedelta(days=30)
    assert policy.dissatisfied(1) and policy.dissatisfied(2)
    assert not policy.dissatisfied(3) and not policy.dissatisfied(None)


def test_a_written_policy_overrides_only_what_it_names() -> None:
    policy = parse_policy({"rates": {"公区维修": 50}, "retry_after": "2h", "max_attempts": 5,
                           "dissatisfied_at_most": 0})
    assert policy.rate("公区维修") == 50 and policy.rate("居家维修") == 100
    assert policy.retry_after == timedelta(hours=2) and not policy.dissatisfied(1)
    assert policy.stored() == {"rates": {"公区维修": 50}, "retry_after": "2h",
                               "max_attempts": 5, "dissatisfied_at_most": 0}


@pytest.mark.parametrize(("spec", "field"), [
    ({"rates": {"公区维修": 120}}, "rates.公区维修"),
    ({"rates": {"garden": 50}}, "rates.garden.[key]"),
    ({"complaints": -1}, "complaints"),
    ({"retry_after": "soon"}, "retry_after"),
    ({"max_attempts": 0}, "max_attempts"),
    ({"sources": ["email"]}, "sources[0]"),
    ({"visits": 1}, "visits"),
])
def test_a_bad_policy_names_its_field(spec: dict[str, object], field: str) -> None:
    with pytest.raises(FollowUpPolicyError, match=re.escape(f"follow_up_policy: {field}:")):
        parse_policy(spec)


@pytest.mark.parametrize("percent", [0, 30, 50, 90, 95, 100])
def test_the_picked_share_is_met_at_every_count_and_evenly_spread(percent: int) -> None:
    picks = [picked(k, percent) for k in range(1, 1001)]
    for n in range(1, 1001):
        assert sum(picks[:n]) * 100 >= n * percent  # never below the share
        assert sum(picks[:n]) * 100 < n * percent + 100  # and at most one more
    if percent == 90:  # every 10th skipped
        assert [k for k in range(1, 31) if not picked(k, 90)] == [10, 20, 30]


def test_attempts_give_satisfaction_exactly_when_reached() -> None:
    check_attempt("reached", 4)
    check_attempt("unreachable", None)
    check_attempt("refused", None)
    for outcome, satisfaction in (("reached", None), ("unreachable", 3), ("refused", 1),
                                  ("reached", 6), ("reached", 0), ("maybe", None)):
        with pytest.raises(Invalid):
            check_attempt(outcome, satisfaction)


def test_only_unreachable_attempts_below_the_maximum_are_retried() -> None:
    policy = parse_policy({"retry_after": "4h", "max_attempts": 3})
    assert next_attempt("unreachable", 1, T0, policy) == T0 + timedelta(hours=4)
    assert next_attempt("unreachable", 2, T0, policy) == T0 + timedelta(hours=4)
    assert next_attempt("unreachable", 3, T0, policy) is None
    assert next_attempt("reached", 1, T0, policy) is None
    assert next_attempt("refused", 1, T0, policy) is None
