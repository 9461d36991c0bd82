"""The staff console: server-rendered pages for engineers, supervisors and managers."""
