"""Grafana dashboards as code and provisioning; weekly report rendering."""
