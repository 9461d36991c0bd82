-- Beyond the anchors (issue 16): the work orders Caretaker opens from what it predicts and
-- cross-checks. preventive: a forecast says a metric will cross a rule's threshold soon;
-- calibration: a technician's gauge reading and the device's sensor disagree, repeatedly;
-- verification: nobody verified an alarm that asked a guard to go and look.
ALTER TABLE work_orders DROP CONSTRAINT work_orders_source_check;
ALTER TABLE work_orders ADD CONSTRAINT work_orders_source_check
    CHECK (source IN ('alarm', 'inspection', 'patrol', 'manual', 'complaint',
                      'preventive', 'calibration', 'verification'));
