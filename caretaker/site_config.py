"""Site configuration files (YAML): validated, then applied idempotently by upserts.

A file describes one site: the registry sections (site, zones, device_types, devices,
guards, checkpoints) loaded here, and further sections (rules, routes, ...) that the
composition root passes in (`stack/app.py`, SECTIONS), each with the type its content
validates as and its loader. The whole file is validated at once, every error named by its
path (`rules[2].threshold: ...`); loading a file twice changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import psycopg
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    create_model,
)

from caretaker import registry
from caretaker.errors import Invalid
from caretaker.ids import Ident

# A further section's loader: fn(conn, site_id, value, *, now=now), given the section's
# validated value; errors it raises as `Invalid` are reported with the section's name.
SectionLoader = Callable[..., None]


@dataclass(frozen=True)
class Section:
    """A further site-file section: the type its content validates as, and its loader."""

    model: Any  # a pydantic model, or a type pydantic validates (list[Rule], ...)
    load: SectionLoader

REGISTRY_SECTIONS = ("site", "zones", "device_types", "devices", "guards", "checkpoints")
EXAMPLE = "riverside.yaml"

Name = Annotated[str, StringConstraints(min_length=1)]
# Free text the database can store: no NUL character (PostgreSQL text refuses it).
NO_NUL = r"^[^\x00]*$"
Text = Annotated[str, StringConstraints(pattern=NO_NUL, max_length=2000)]
ShortText = Annotated[str, StringConstraints(pattern=NO_NUL, min_length=1, max_length=200)]


def unique_ids(items: list[Any]) -> list[Any]:
    """A section's items, refused when two have the same id (pydantic AfterValidator)."""
    ids = [i.id for i in items]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ValueError(f"an id appears twice: {', '.join(twice)}")
    return items


class SiteConfigError(Invalid):
    """A site configuration that cannot be applied; the message names the bad field."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SiteSpec(_Spec):
    id: Ident
    name: Name
    timezone: Annotated[str, AfterValidator(registry.check_timezone)] = "UTC"
    address: str | None = None


class ZoneSpec(_Spec):
    id: Ident
    name: Name
    kind: str | None = None


class DeviceTypeSpec(_Spec):
    id: Ident
    name: Name
    metrics: dict[str, dict[str, Any]] = Field(default_factory=dict)


class DeviceSpec(_Spec):
    id: Ident
    name: Name
    type: Ident | None = None
    zone: Ident | None = None
    status: Literal["active", "retired"] = "active"
    attributes: dict[str, Any] = Field(default_factory=dict)
    overrides: dict[str, Any] = Field(default_factory=dict)


class GuardSpec(_Spec):
    id: Ident
    name: Name
    post: str | None = None
    active: bool = True


class CheckpointSpec(_Spec):
    id: Ident
    name: Name
    tag: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    kind: Literal["patrol", "equipment"] = "patrol"
    zone: Ident | None = None
    device: Ident | None = None
    checklist: list[dict[str, Any]] = Field(default_factory=list)


class SiteConfig(BaseModel):
    """A whole file: the registry sections, plus the further sections (typed, see `parse`)."""

    model_config = ConfigDict(extra="forbid")
    further: ClassVar[tuple[str, ...]] = ()

    site: SiteSpec
    zones: list[ZoneSpec] = Field(default_factory=list)
    device_types: list[DeviceTypeSpec] = Field(default_factory=list)
    devices: list[DeviceSpec] = Field(default_factory=list)
    guards: list[GuardSpec] = Field(default_factory=list)
    checkpoints: list[CheckpointSpec] = Field(default_factory=list)

    @property
    def extra_sections(self) -> dict[str, Any]:
        """The further sections this file has, validated."""
        return {name: getattr(self, name) for name in self.further
                if getattr(self, name) is not None}


_FILE_MODELS: dict[tuple[tuple[str, int], ...], type[SiteConfig]] = {}


def _file_model(sections: Mapping[str, Section]) -> type[SiteConfig]:
    """The model of a whole file with these further sections (made once per set)."""
    key = tuple((name, id(s.model)) for name, s in sections.items())
    if key not in _FILE_MODELS:
        fields: dict[str, Any] = {name: (s.model | None, None) for name, s in sections.items()}
        model = create_model("SiteFile", __base__=SiteConfig, **fields)
        model.further = tuple(sections)
        _FILE_MODELS[key] = model
    return _FILE_MODELS[key]


@dataclass
class LoadResult:
    """What a load did: per section, how many rows were inserted, updated, left unchanged."""

    site_id: str
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    sections: list[str] = field(default_factory=list)  # further sections applied

    def count(self, section: str, outcome: str) -> None:
        per = self.counts.setdefault(section, {"inserted": 0, "updated": 0, "unchanged": 0})
        per[outcome] += 1

    @property
    def changed(self) -> int:
        """Registry rows inserted or updated by this load."""
        return sum(c["inserted"] + c["updated"] for c in self.counts.values())

    def summary(self) -> str:
        lines = [f"site {self.site_id}:"]
        for section, c in self.counts.items():
            lines.append(f"  {section:<13} {c['inserted']} new, {c['updated']} updated, "
                         f"{c['unchanged']} unchanged")
        lines += [f"  {name:<13} applied" for name in self.sections]
        return "\n".join(lines)


def where(loc: tuple[int | str, ...], *, empty: str = "(file)") -> str:
    """A pydantic error location as a path: devices[3].type.

    A union member's tag (`kind=threshold`) is left out: it names no field.
    """
    out = ""
    for part in loc:
        if isinstance(part, str) and "=" in part:
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or empty


def message(error: Any) -> str:
    """A pydantic error's message without pydantic's 'Value error, ' prefix."""
    return str(error["msg"]).removeprefix("Value error, ")


def problems(exc: ValidationError, *, empty: str = "(file)") -> list[str]:
    """Each error of a validation as `path: message` (an empty path as `empty`, or none)."""
    out = []
    for e in exc.errors():
        path = where(e["loc"], empty=empty)
        out.append(f"{path}: {message(e)}" if path else message(e))
    return out


def parse(doc: Any, sections: Mapping[str, Section] | None = None) -> SiteConfig:
    """Validate a parsed YAML document; SiteConfigError lists every bad field by its path.

    `sections` are the further sections a file may have (the others are refused).
    """
    sections = sections or {}
    if not isinstance(doc, Mapping):
        raise SiteConfigError("a site configuration must be a mapping with at least `site:`")
    unknown = [k for k in doc if k not in REGISTRY_SECTIONS and k not in sections]
    if unknown:
        known = ", ".join([*REGISTRY_SECTIONS, *sections])
        raise SiteConfigError(f"unknown section(s) {', '.join(map(repr, unknown))}; "
                              f"known sections: {known}")
    model = _file_model(sections)
    try:
        config = model.model_validate(doc)
    except ValidationError as exc:
        lines = [f"  {p}" for p in problems(exc)]
        raise SiteConfigError("invalid site configuration:\n" + "\n".join(lines)) from None
    _check_unique(config)
    return config


def _check_unique(config: SiteConfig) -> None:
    for section in ("zones", "device_types", "devices", "guards", "checkpoints"):
        seen: set[str] = set()
        for i, item in enumerate(getattr(config, section)):
            if item.id in seen:
                raise SiteConfigError(f"{section}[{i}].id: {item.id!r} appears twice")
            seen.add(item.id)
    tags: set[str] = set()
    for i, cp in enumerate(config.checkpoints):
        if cp.tag in tags:
            raise SiteConfigError(f"checkpoints[{i}].tag: {cp.tag!r} is used by two checkpoints")
        tags.add(cp.tag)


def _check_references(conn: psycopg.Connection[Any], config: SiteConfig) -> None:
    """Every zone, type and device a record names exists in the file or already in the site."""
    site = config.site.id
    known = {
        "zone": {z.id for z in config.zones} | registry.existing_ids(conn, registry.ZONES, site),
        "type": {t.id for t in config.device_types}
        | registry.existing_ids(conn, registry.DEVICE_TYPES, None),
        "device": {d.id for d in config.devices}
        | registry.existing_ids(conn, registry.DEVICES, site),
    }
    problems = []
    refs: list[tuple[str, list[Any], tuple[str, ...]]] = [
        ("devices", config.devices, ("type", "zone")),
        ("checkpoints", config.checkpoints, ("zone", "device")),
    ]
    for section, items, fields in refs:
        for i, item in enumerate(items):
            for name in fields:
                value = getattr(item, name)
                if value is not None and value not in known[name]:
                    problems.append(f"  {section}[{i}].{name}: unknown {name} {value!r} "
                                    f"(not in this file's {name}s nor in site {site!r})")
    if problems:
        raise SiteConfigError("invalid site configuration:\n" + "\n".join(problems))


def load_site_config(conn: psycopg.Connection[Any], doc: Any, *, now: datetime,
                     sections: Mapping[str, Section]) -> LoadResult:
    """Apply a parsed site configuration in one transaction: registry first, then `sections`.

    `sections` are applied in their order; a file section with no loader is refused.
    """
    config = parse(doc, sections)
    site = config.site
    result = LoadResult(site.id)
    with conn.transaction():
        _check_references(conn, config)
        rows: list[tuple[str, registry.Table, dict[str, Any]]] = [
            ("site", registry.SITES, {**site.model_dump(), "auto_registered": False})]
        rows += [("zones", registry.ZONES, {"site_id": site.id, **z.model_dump()})
                 for z in config.zones]
        rows += [("device_types", registry.DEVICE_TYPES, t.model_dump())
                 for t in config.device_types]
        rows += [("devices", registry.DEVICES,
                  {"site_id": site.id, "id": d.id, "name": d.name, "type_id": d.type,
                   "zone_id": d.zone, "status": d.status, "attributes": d.attributes,
                   "overrides": d.overrides})
                 for d in config.devices]
        rows += [("guards", registry.GUARDS, {"site_id": site.id, **g.model_dump()})
                 for g in config.guards]
        rows += [("checkpoints", registry.CHECKPOINTS,
                  {"site_id": site.id, "id": c.id, "name": c.name, "tag": c.tag,
                   "kind": c.kind, "zone_id": c.zone, "device_id": c.device,
                   "checklist": c.checklist})
                 for c in config.checkpoints]
        for section, table, values in rows:
            try:
                outcome = registry.upsert_row(conn, table, values, now=now)
            except registry.RegistryError as exc:
                raise SiteConfigError(f"{section}: {exc}") from exc
            result.count(section, outcome)
        extra = config.extra_sections
        for name, further in sections.items():
            if name in extra:
                try:
                    further.load(conn, site.id, extra[name], now=now)
                except Invalid as exc:
                    if isinstance(exc, SiteConfigError):
                        raise
                    raise SiteConfigError(f"{name}: {exc}") from exc
                result.sections.append(name)
    return result


def read_file(path: Path) -> Any:
    """Parse a YAML site configuration file; SiteConfigError when it is not valid YAML."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SiteConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise SiteConfigError(f"{path} is not valid YAML: {exc}") from exc


def example_document() -> Any:
    """The packaged example site (Riverside Gardens), parsed."""
    text = (resources.files("caretaker") / "examples" / EXAMPLE).read_text(encoding="utf-8")
    return yaml.safe_load(text)


