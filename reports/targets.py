"""A site's KPI targets (site file `kpi_targets:`), with the seed's contract values as defaults.

Seed 002 (分项指标): 零修急修及时率 99 %, 设备完好率 100 %, 有效投诉处理率 100 %, 满意率 98 %,
维修服务回访率 ≥ 30 %; the centre's follow-up manual (seed 001) asks for complaints 100 %,
paid services (居家维修) 100 % and repairs ≥ 90 %. A KPI without a target has none (null).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from caretaker.errors import Invalid
from caretaker.site_config import problems

Share = Annotated[float, Field(ge=0, le=1)]
Seconds = Annotated[float, Field(gt=0)]

# The follow-up categories: the work-order categories, and complaints (投诉).
COMPLAINTS = "complaints"
DEFAULT_FOLLOWUP = {COMPLAINTS: 1.0, "居家维修": 1.0, "公区维修": 0.9, "设备": 0.9,
                    "整改": 0.9, "其他": 0.9}


class TargetsError(Invalid):
    """KPI targets that cannot be used; the message names the field."""


class KpiTargets(BaseModel):
    """The written targets (site file `kpi_targets:`); every key optional, shares 0..1."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repair_timeliness: Share | None = 0.99
    response_timeliness: Share | None = None
    mtta_seconds: Seconds | None = None
    mttr_seconds: Seconds | None = None
    followup_rate: Share | None = Field(default=0.3, description=(
        "all categories together (seed 002: 维修服务回访率 ≥ 30 %)"))
    followup_by_category: dict[str, Share] = Field(default_factory=lambda: dict(
        DEFAULT_FOLLOWUP), description="per category: complaints, 居家维修, 公区维修, ...")
    satisfaction: Share | None = 0.98
    complaint_handling: Share | None = 1.0
    equipment_intact: Share | None = 1.0
    patrol_completion: Share | None = None
    inspection_completion: Share | None = 1.0
    backlog: Annotated[int, Field(ge=0)] | None = None  # open work orders at most
    repeat_faults: Annotated[int, Field(ge=0)] | None = None
    mtbf_seconds: Seconds | None = None

    def target(self, name: str) -> float | None:
        """The target of a KPI by its name (None: no target)."""
        value = getattr(self, name, None)
        return None if value is None else float(value)

    def followup(self, category: str) -> float | None:
        """The follow-up rate target of one category (its default when the file names others)."""
        if category in self.followup_by_category:
            return self.followup_by_category[category]
        return DEFAULT_FOLLOWUP.get(category)

    def stored(self) -> dict[str, Any]:
        """The JSON the `kpi_targets` table keeps (only what was written)."""
        return self.model_dump(mode="json", exclude_unset=True)


DEFAULTS = KpiTargets()


def parse_targets(spec: Any) -> KpiTargets:
    """Targets from their YAML/JSON shape; TargetsError naming the bad field."""
    try:
        return KpiTargets.model_validate(spec or {})
    except ValidationError as exc:
        raise TargetsError("kpi_targets: " + "; ".join(problems(exc, empty=""))) from None


def load_targets(conn: psycopg.Connection[Any], site_id: str) -> KpiTargets:
    """The site's targets (the defaults when its file has none)."""
    row = conn.cursor(row_factory=dict_row).execute(
        "SELECT targets FROM kpi_targets WHERE site_id = %s", (site_id,)).fetchone()
    return DEFAULTS if row is None else parse_targets(row["targets"])


def save_targets(conn: psycopg.Connection[Any], site_id: str, spec: KpiTargets, *,
                 now: datetime) -> None:
    """Store a site's targets (the `kpi_targets:` section's loader)."""
    conn.execute(
        "INSERT INTO kpi_targets (site_id, targets, updated_at) VALUES (%s, %s, %s)"
        " ON CONFLICT (site_id) DO UPDATE SET targets = EXCLUDED.targets,"
        " updated_at = EXCLUDED.updated_at WHERE kpi_targets.targets <> EXCLUDED.targets",
        (site_id, Jsonb(spec.stored()), now))
