"""Site configuration files (YAML): validated, then applied idempotently by upserts.

A file describes one site: the registry sections (site, zones, device_types, devices,
guards, checkpoints) loaded here, and further sections (rules, routes, ...) loaded by the
loaders the composition root passes in (`stack/app.py`, SECTIONS). Loading a file twice
changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import psycopg
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from caretaker import registry
from caretaker.errors import Invalid

# A further section's loader: fn(conn, site_id, items, *, now=now); errors it raises as
# `Invalid` are reported with the section's name.
SectionLoader = Callable[..., None]
REGISTRY_SECTIONS = ("site", "zones", "device_types", "devices", "guards", "checkpoints")
EXAMPLE = "riverside.yaml"

Ident = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Name = Annotated[str, StringConstraints(min_length=1)]


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
    """A whole file: the registry sections, plus the sections other loaders take."""

    model_config = ConfigDict(extra="allow")

    site: SiteSpec
    zones: list[ZoneSpec] = Field(default_factory=list)
    device_types: list[DeviceTypeSpec] = Field(default_factory=list)
    devices: list[DeviceSpec] = Field(default_factory=list)
    guards: list[GuardSpec] = Field(default_factory=list)
    checkpoints: list[CheckpointSpec] = Field(default_factory=list)

    @property
    def extra_sections(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


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


def _where(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a path: devices[3].type."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(file)"


def parse(doc: Any, sections: Collection[str] = ()) -> SiteConfig:
    """Validate a parsed YAML document; SiteConfigError lists every bad field by its path.

    `sections` names the further sections a file may have (the others are refused).
    """
    if not isinstance(doc, Mapping):
        raise SiteConfigError("a site configuration must be a mapping with at least `site:`")
    try:
        config = SiteConfig.model_validate(doc)
    except ValidationError as exc:
        problems = [f"  {_where(e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise SiteConfigError("invalid site configuration:\n" + "\n".join(problems)) from None
    unknown = [k for k in config.extra_sections if k not in sections]
    if unknown:
        known = ", ".join([*REGISTRY_SECTIONS, *sections])
        raise SiteConfigError(f"unknown section(s) {', '.join(map(repr, unknown))}; "
                              f"known sections: {known}")
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
                     sections: Mapping[str, SectionLoader]) -> LoadResult:
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
        for name, loader in sections.items():
            if name in extra and extra[name] is not None:
                try:
                    loader(conn, site.id, extra[name], now=now)
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


