-- KPIs (issue 11): the site's KPI targets (site file `kpi_targets:`), and the indexes that
-- let each KPI read one site's period by its deadline or event time.

CREATE TABLE kpi_targets (
    site_id    ident PRIMARY KEY REFERENCES sites ON DELETE CASCADE,
    targets    jsonb NOT NULL,  -- only what the site file wrote; defaults fill the rest
    updated_at timestamptz NOT NULL
);

CREATE INDEX work_orders_resolve_by_idx ON work_orders (site_id, resolve_by);
CREATE INDEX work_orders_respond_by_idx ON work_orders (site_id, respond_by);
CREATE INDEX work_orders_acknowledged_idx ON work_orders (site_id, acknowledged_at)
    WHERE acknowledged_at IS NOT NULL;
CREATE INDEX work_orders_resolved_idx ON work_orders (site_id, resolved_at)
    WHERE resolved_at IS NOT NULL;
CREATE INDEX complaints_answer_by_idx ON complaints (site_id, answer_by);
-- faults (each alarm or finding a ticket answers) by when they happened: repeat faults, MTBF
CREATE INDEX work_order_refs_at_idx ON work_order_refs (at);
