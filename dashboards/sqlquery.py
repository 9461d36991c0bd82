"""The SQL dataquery of Grafana's PostgreSQL datasource, which the foundation SDK 0.0.21 lacks:
a cog Dataquery variant and its builder, as the SDK's custom-query example adds one."""

from __future__ import annotations

from typing import Any, Literal, Self

from grafana_foundation_sdk.cog import builder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.common import DataSourceRef

PLUGIN = "grafana-postgresql-datasource"  # the datasource's plugin id (Grafana 10.2+)
DATASOURCE_UID = "caretaker-timescaledb"
DATASOURCE = DataSourceRef(type_val=PLUGIN, uid=DATASOURCE_UID)
Format = Literal["time_series", "table"]


class SqlQuery(cogvariants.Dataquery):
    """One raw SQL query of a panel (code mode), with its result format."""

    def __init__(self, raw_sql: str, format: Format = "table", ref_id: str | None = None,
                 hide: bool | None = None) -> None:
        self.raw_sql = raw_sql
        self.format = format
        self.ref_id = ref_id
        self.hide = hide

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "datasource": DATASOURCE.to_json(), "editorMode": "code", "format": self.format,
            "rawQuery": True, "rawSql": self.raw_sql}
        if self.ref_id is not None:
            payload["refId"] = self.ref_id
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(str(data.get("rawSql", "")), data.get("format", "table"),
                   data.get("refId"), data.get("hide"))


def variant_config() -> cogruntime.DataqueryConfig:
    """Lets cog read SQL queries back from dashboard JSON (register_dataquery_variant)."""
    return cogruntime.DataqueryConfig(identifier=PLUGIN, from_json_hook=SqlQuery.from_json)


class Sql(builder.Builder[SqlQuery]):
    """Builder of a SqlQuery: Sql("SELECT ...").time_series().ref_id("A")."""

    def __init__(self, raw_sql: str) -> None:
        self._internal = SqlQuery(raw_sql.strip())

    def build(self) -> SqlQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def time_series(self) -> Self:
        self._internal.format = "time_series"
        return self

    def table(self) -> Self:
        self._internal.format = "table"
        return self

    def hide(self, hide: bool) -> Self:
        self._internal.hide = hide
        return self
