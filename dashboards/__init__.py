"""Grafana dashboards as code: five dashboards over the TimescaleDB, their provisioning files,
the push through Grafana's HTTP API, and the read-only database role Grafana connects as."""

import warnings

# The SDK warns when its v1 dashboard model and builders are imported ("prefer dashboardv2");
# v1 is the JSON that file provisioning and /api/dashboards/db take, so it is the one we build.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Prefer using dashboardv2", DeprecationWarning)
    import grafana_foundation_sdk.builders.bargauge
    import grafana_foundation_sdk.builders.dashboard
    import grafana_foundation_sdk.builders.stat
    import grafana_foundation_sdk.builders.table
    import grafana_foundation_sdk.builders.timeseries
    import grafana_foundation_sdk.models.dashboard  # noqa: F401
