"""Grafana dashboards as code: five dashboards over the TimescaleDB, their provisioning files,
the push through Grafana's HTTP API, and the read-only database role Grafana connects as."""
