"""KPIs and reports: one KPI library over the records, the weekly inspection report and the
shift handover sheet, rendered as HTML and PDF in Chinese or English."""
