"""Empty for now: where the Grafana dashboards (as code) and the weekly report will live."""
