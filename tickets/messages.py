"""What a notification says: what, where, which deadline, and a link — in the site's language.

`compose` is pure (record, place, language → Message); `place_of` reads the names of the
site, zone, device and checkpoint a record points at. Residents' names and phones are masked
here: a group chat or a mailbox is outside the roles that see them whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from caretaker.privacy import mask_name, mask_phone, masked

PERSONAL_NAMES = ("reporter_name", "complainant_name")
PERSONAL_PHONES = ("reporter_phone", "complainant_phone")
LONGEST_TEXT = 200  # characters of a description quoted in a message

TITLES: dict[str, dict[tuple[str, str], str]] = {
    "zh-CN": {
        ("work_order", "opened"): "【新工单】#{id} {title}",
        ("work_order", "escalated"): "【工单升级{level_text}】#{id} {title}",
        ("work_order", "overdue"): "【工单超时】#{id} {title}",
        ("work_order", "answered"): "【工单已答复】#{id} {title}",
        ("work_order", "closed"): "【工单已关闭】#{id} {title}",
        ("complaint", "opened"): "【新投诉】{number}（{grade}）",
        ("complaint", "escalated"): "【投诉升级{level_text}】{number}（{grade}）",
        ("complaint", "overdue"): "【投诉超时未答复】{number}（{grade}）",
        ("complaint", "answered"): "【投诉已答复】{number}",
        ("complaint", "closed"): "【投诉已关闭】{number}",
        ("report", "weekly"): "【周报】{title}",
        ("handover", "unsigned"): "【交接班未签字】{title}",
        ("verification", "opened"): "【告警核实】请前往核实：{title}",
        ("verification", "answered"): "【告警已核实】{title}",
        ("verification", "overdue"): "【告警未核实】{title}",
        ("any", "test"): "【测试】Caretaker 通知测试",
        ("any", "any"): "【{subject} {event}】{title}",
    },
    "en": {
        ("work_order", "opened"): "New work order #{id}: {title}",
        ("work_order", "escalated"): "Escalated{level_text}: work order #{id} {title}",
        ("work_order", "overdue"): "Overdue: work order #{id} {title}",
        ("work_order", "answered"): "Answered: work order #{id} {title}",
        ("work_order", "closed"): "Closed: work order #{id} {title}",
        ("complaint", "opened"): "New complaint {number} ({grade})",
        ("complaint", "escalated"): "Escalated{level_text}: complaint {number} ({grade})",
        ("complaint", "overdue"): "Unanswered past its deadline: complaint {number} ({grade})",
        ("complaint", "answered"): "Answered: complaint {number}",
        ("complaint", "closed"): "Closed: complaint {number}",
        ("report", "weekly"): "Weekly report: {title}",
        ("handover", "unsigned"): "Handover sheet not signed: {title}",
        ("verification", "opened"): "Go and verify: {title}",
        ("verification", "answered"): "Verified: {title}",
        ("verification", "overdue"): "Not verified in time: {title}",
        ("any", "test"): "Test: a Caretaker notification",
        ("any", "any"): "{subject} {event}: {title}",
    },
}
LEVEL_TEXT = {"zh-CN": "·第{level}级", "en": " (level {level})"}

LABELS: dict[str, dict[str, str]] = {
    "zh-CN": {"what": "事项", "severity": "级别", "grade": "等级", "category": "类别",
              "where": "地点", "deadline": "时限", "respond": "响应", "resolve": "完成",
              "answer": "答复", "passed": "{which}时限 {due} 已过", "overdue": "超时",
              "level": "升级", "level_value": "第{level}级 → {who}", "reporter": "报告人",
              "complainant": "投诉人", "state": "状态", "link": "查看", "raised": "严重程度升至",
              "test": "这是一条测试消息：收到即表示此接收方配置正确。", "sep": "：",
              "join": "，"},
    "en": {"what": "What", "severity": "Severity", "grade": "Grade", "category": "Category",
           "where": "Where", "deadline": "Deadline", "respond": "respond by",
           "resolve": "resolve by", "answer": "answer by", "passed": "{which} {due} passed",
           "overdue": "Overdue", "level": "Escalation", "level_value": "level {level} → {who}",
           "reporter": "Reporter", "complainant": "Complainant", "state": "State",
           "link": "Open", "raised": "Severity raised to",
           "test": "A test message: if it arrived, this receiver is set up right.", "sep": ": ",
           "join": ", "},
}
WORDS: dict[str, dict[str, str]] = {
    "zh-CN": {"critical": "紧急", "major": "严重", "minor": "一般", "warning": "预警",
              "open": "待处理", "acknowledged": "已响应", "in_progress": "处理中",
              "resolved": "已完成", "closed": "已关闭", "cancelled": "已取消",
              "assigned": "已分派", "answered": "已答复", "rework": "返工",
              "confirmed": "属实", "false_alarm": "误报", "not_verified": "未核实"},
    "en": {"in_progress": "in progress", "false_alarm": "false alarm",
           "not_verified": "not verified"},
}
PATHS = {"work_order": "/api/v1/work-orders/{id}", "complaint": "/api/v1/complaints/{id}"}


@dataclass(frozen=True)
class Place:
    """Where a record is: the names of its site, zone, device and checkpoint."""

    site: str
    timezone: str = "UTC"
    zone: str | None = None
    device: str | None = None
    checkpoint: str | None = None

    def text(self) -> str:
        """Site · zone · device · checkpoint, the ones known."""
        return " · ".join(p for p in (self.site, self.zone, self.device, self.checkpoint) if p)


@dataclass(frozen=True)
class Message:
    """A notification's text: a title, lines of `label: value`, and a link."""

    title: str
    lines: tuple[str, ...]
    link: str | None
    link_label: str = "link"

    def plain(self) -> str:
        """The message as plain text (e-mail)."""
        return "\n".join([self.title, "", *self.lines, *([self.link] if self.link else [])])

    def markdown(self, *, paragraph: bool = False) -> str:
        """The message as robot markdown; `paragraph` separates lines by a blank line
        (DingTalk joins single newlines)."""
        sep = "\n\n" if paragraph else "\n"
        parts = [f"### {self.title}", *self.lines]
        if self.link:
            parts.append(f"[{self.link_label}]({self.link})")
        return sep.join(parts)

    def jsonable(self) -> dict[str, Any]:
        """Title, lines and link as the outbox stores them."""
        return {"title": self.title, "lines": list(self.lines), "link": self.link,
                "link_label": self.link_label}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Message:
        """The message an outbox row stores."""
        return cls(str(value.get("title") or ""), tuple(str(x) for x in value.get("lines", [])),
                   value.get("link"), str(value.get("link_label") or "link"))


def personal_masked(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record with residents' names and phones masked."""
    return masked(record, names=PERSONAL_NAMES, phones=PERSONAL_PHONES)


def _local(value: Any, tz: str) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if isinstance(value, datetime):
        return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _short(value: Any) -> str:
    text = " ".join(str(value or "").split())
    return text if len(text) <= LONGEST_TEXT else text[:LONGEST_TEXT - 1] + "…"


def compose(*, subject: str, event: str, record: Mapping[str, Any], place: Place,
            language: str, base: str, extra: Mapping[str, Any] | None = None) -> Message:
    """The message about one event, in `language` (zh-CN or en); links start with `base`."""
    lang = language if language in TITLES else "zh-CN"
    lab, words, extra = LABELS[lang], WORDS[lang], dict(extra or {})

    def word(value: Any) -> str:
        return words.get(str(value), str(value))

    def line(label: str, value: Any) -> str:
        return f"{lab[label]}{lab['sep']}{value}"

    level = extra.get("level")
    fields = {"id": record.get("id", ""), "number": record.get("number", ""),
              "grade": record.get("grade", ""), "subject": subject, "event": event,
              "title": _short(extra.get("title") or record.get("title")
                              or record.get("name") or ""),
              "level_text": LEVEL_TEXT[lang].format(level=level) if level else ""}
    titles = TITLES[lang]
    template = (titles.get((subject, event)) or titles.get(("any", event))
                or titles[("any", "any")])
    title = template.format(**fields)
    lines: list[str] = []
    if event == "test":
        lines.append(lab["test"])
    if subject == "work_order":
        lines.append(line("what", _short(record.get("description") or record.get("title"))))
        if record.get("severity"):
            lines.append(line("severity", word(record["severity"])))
        if record.get("category"):
            category = record["category"] + (f" · {record['urgency']}"
                                              if record.get("urgency") else "")
            lines.append(line("category", category))
    elif subject == "complaint":
        lines.append(line("what", _short(record.get("description"))))
        if record.get("category"):
            lines.append(line("category", record["category"]))
    if place.text():
        lines.append(line("where", place.text()))
    deadlines = [(k, record.get(f"{k}_by")) for k in ("respond", "resolve", "answer")]
    shown = [f"{lab[k]} {_local(v, place.timezone)}" for k, v in deadlines if v]
    if shown and subject in ("work_order", "complaint"):
        lines.append(line("deadline", lab["join"].join(shown)))
    if subject == "verification" and record.get("due_by"):
        lines.append(line("deadline", _local(record["due_by"], place.timezone)))
    if extra.get("deadline") and extra.get("due_at"):
        which = lab.get(str(extra["deadline"]), str(extra["deadline"]))
        lines.append(line("overdue", lab["passed"].format(
            which=which, due=_local(extra["due_at"], place.timezone))))
    if level:
        who = lab["join"].join(str(w) for w in extra.get("who") or [])
        lines.append(line("level", lab["level_value"].format(level=level, who=who)))
    if extra.get("severity_raised"):
        lines.append(f"{lab['raised']} {word(extra['severity_raised'])}")
    for role in ("reporter", "complainant"):
        name, unit, phone = (record.get(f"{role}_{k}") for k in ("name", "unit", "phone"))
        person = " ".join(str(p) for p in (mask_name(name), unit, mask_phone(phone)) if p)
        if person:
            lines.append(line(role, person))
    if record.get("state"):
        lines.append(line("state", word(record["state"])))
    lines += [_short(x) for x in extra.get("lines") or []]
    link = extra.get("link")
    if not link and extra.get("path"):
        link = base + str(extra["path"])
    if not link and subject in PATHS and record.get("id") is not None:
        link = base + PATHS[subject].format(id=record["id"])
    return Message(title, tuple(lines), str(link) if link else None, lab["link"])


def place_of(conn: psycopg.Connection[Any], site_id: str, record: Mapping[str, Any]) -> Place:
    """The names of the site, zone, device and checkpoint `record` points at."""
    row = conn.execute(
        "SELECT s.name AS site, s.timezone, d.name AS device, c.name AS checkpoint,"
        " z.name AS zone FROM sites s"
        " LEFT JOIN devices d ON d.site_id = s.id AND d.id = %(device)s"
        " LEFT JOIN checkpoints c ON c.site_id = s.id AND c.id = %(checkpoint)s"
        " LEFT JOIN zones z ON z.site_id = s.id"
        "  AND z.id = coalesce(%(zone)s, d.zone_id, c.zone_id)"
        " WHERE s.id = %(site)s",
        {"site": site_id, "device": record.get("device_id"),
         "checkpoint": record.get("checkpoint_id"), "zone": record.get("zone_id")}).fetchone()
    if row is None:
        return Place(site_id)
    return Place(row["site"], row["timezone"], row["zone"] or record.get("zone_id"),
                 row["device"] or record.get("device_id"),
                 row["checkpoint"] or record.get("checkpoint_id"))


def jsonable(value: Any) -> Any:
    """A row's values made JSON-serialisable (times as ISO 8601)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
