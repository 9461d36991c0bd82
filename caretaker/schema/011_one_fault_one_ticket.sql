-- One fault, one ticket (issue 10): the severity levels of one condition are one rule with
-- `levels` and one alarm whose severity rises and falls; the alarm remembers the worst
-- severity it reached (peak_severity), which its ticket follows. Hazards from patrols: a
-- finding may be a guard's hazard report at any checkpoint, with a severity of its own.

-- alarm_history gains the actions severity_raised, severity_lowered and merged.
ALTER TABLE alarms ADD COLUMN peak_severity text
    CHECK (peak_severity IN ('critical', 'major', 'minor', 'warning'));
UPDATE alarms SET peak_severity = severity;
-- An insert that names no peak (older code, hand-written rows) starts it at the severity.
CREATE FUNCTION alarms_peak_default() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.peak_severity := coalesce(NEW.peak_severity, NEW.severity);
    RETURN NEW;
END $$;
CREATE TRIGGER alarms_peak_default BEFORE INSERT ON alarms
    FOR EACH ROW EXECUTE FUNCTION alarms_peak_default();
ALTER TABLE alarms ALTER COLUMN peak_severity SET NOT NULL;

-- equipment: a checklist answer out of range (or an abnormal scan) at an equipment
-- checkpoint; hazard (安全隐患): an abnormal scan anywhere else, the guard's note its text.
ALTER TABLE inspection_findings
    ADD COLUMN kind text NOT NULL DEFAULT 'equipment' CHECK (kind IN ('equipment', 'hazard')),
    -- from the checklist items found wrong (every finding was 'major' before)
    ADD COLUMN severity text NOT NULL DEFAULT 'major'
        CHECK (severity IN ('critical', 'major', 'minor', 'warning')),
    -- null: a hazard reported with a tag no checkpoint has
    ALTER COLUMN checkpoint_id DROP NOT NULL;

-- GET /scans?result=abnormal
CREATE INDEX scans_abnormal_idx ON scans (site_id, time DESC) WHERE result = 'abnormal';

-- Existing data: each family of rules that are the severity levels of one condition becomes
-- one rule with levels. A family: two or more enabled-alike threshold (or rate, same window)
-- rules of one site with the same metric, scope and ordering op, each of another severity,
-- whose thresholds and clear values lie further out as the severity worsens (exactly what
-- the model accepts as levels; any other group is left alone). The new rule's id is the ids'
-- common prefix without its trailing '-', '_' or '.' (pump-vibration-warning/-major/
-- -critical → pump-vibration), or the worst member's id if that is empty or taken. Per
-- device, the family's alarms that are not cleared merge into the worst one (the others are
-- cleared by 'migration', with history on both sides); it keeps its own ticket, or else the
-- worst other's. Alarms and tickets of the members name the new rule; the members' rule state
-- is deleted and a merged alarm's device gets the state of a firing alarm at its level (so
-- the next reading lowers or clears it); other rules' inhibits and devices' overrides that
-- name a member name the new rule (an override becomes a levels override).
CREATE TEMP TABLE merge_state (site_id text, device_id text, state jsonb) ON COMMIT DROP;

DO $merge$
DECLARE
    sev CONSTANT text[] := ARRAY['warning', 'minor', 'major', 'critical'];
    fam record;
    dev record;
    keep record;
    first_rule record;
    ids text[];
    level_sev text[];
    clears float8[];
    new_id text;
    x text;
    dir float8;
    lvls jsonb;
    inh jsonb;
    inh_rules jsonb;
    wo bigint;
    merged bigint[];
    last_ts float8;
    born timestamptz;
BEGIN
    FOR fam IN
        SELECT site_id, kind, metric, device_type, device_id, params->>'op' AS op, enabled,
               array_agg(id ORDER BY array_position(sev, severity)) AS ids,
               array_agg((params->>'threshold')::float8
                         ORDER BY array_position(sev, severity)) AS thresholds,
               array_agg(coalesce(params->>'clear', params->>'threshold')::float8
                         ORDER BY array_position(sev, severity)) AS clears
          FROM rules
         WHERE kind IN ('threshold', 'rate') AND NOT params ? 'levels'
           AND params->>'op' IN ('>', '>=', '<', '<=') AND params ? 'threshold'
         GROUP BY site_id, kind, metric, device_type, device_id, params->>'op', enabled,
                  params->'window'
        HAVING count(*) >= 2 AND count(DISTINCT severity) = count(*)
    LOOP
        dir := CASE WHEN fam.op IN ('>', '>=') THEN 1 ELSE -1 END;
        clears := fam.clears;
        CONTINUE WHEN EXISTS (
            SELECT 1 FROM generate_subscripts(fam.thresholds, 1) AS g(i)
             WHERE dir * (fam.thresholds[g.i] - clears[g.i]) < 0
                OR (g.i > 1 AND (dir * (fam.thresholds[g.i] - fam.thresholds[g.i - 1]) <= 0
                                 OR dir * (clears[g.i] - clears[g.i - 1]) < 0)));
        ids := fam.ids;
        new_id := ids[1];
        FOREACH x IN ARRAY ids LOOP
            WHILE left(x, length(new_id)) <> new_id LOOP
                new_id := left(new_id, length(new_id) - 1);
            END LOOP;
        END LOOP;
        new_id := regexp_replace(new_id, '[-_.]+$', '');
        IF new_id = '' OR EXISTS (SELECT 1 FROM rules WHERE site_id = fam.site_id
                                   AND id = new_id AND id <> ALL (ids)) THEN
            new_id := ids[array_length(ids, 1)];
        END IF;

        SELECT * INTO first_rule FROM rules WHERE site_id = fam.site_id AND id = ids[1];
        SELECT min(created_at) INTO born FROM rules WHERE site_id = fam.site_id AND id = ANY (ids);
        SELECT array_agg(severity ORDER BY array_position(sev, severity)),
               jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                   'severity', severity, 'threshold', params->'threshold',
                   'clear', params->'clear', 'for', params->'for',
                   'clear_for', params->'clear_for')) ORDER BY array_position(sev, severity))
          INTO level_sev, lvls
          FROM rules WHERE site_id = fam.site_id AND id = ANY (ids);

        -- what the members inhibit, without each other
        inh := NULL;
        inh_rules := NULL;
        IF EXISTS (SELECT 1 FROM rules WHERE site_id = fam.site_id AND id = ANY (ids)
                    AND inhibits->'rules' = '"*"') THEN
            inh_rules := '"*"';
        ELSE
            SELECT jsonb_agg(DISTINCT e.v) INTO inh_rules
              FROM rules r, jsonb_array_elements_text(
                       CASE WHEN jsonb_typeof(r.inhibits->'rules') = 'array'
                            THEN r.inhibits->'rules' ELSE '[]' END) AS e(v)
             WHERE r.site_id = fam.site_id AND r.id = ANY (ids) AND e.v <> ALL (ids);
        END IF;
        IF inh_rules IS NOT NULL THEN
            inh := jsonb_build_object('rules', inh_rules, 'scope',
                CASE WHEN EXISTS (SELECT 1 FROM rules WHERE site_id = fam.site_id
                                   AND id = ANY (ids) AND inhibits->>'scope' = 'site')
                     THEN 'site' ELSE 'device' END);
        END IF;

        -- per device, the family's alarms that are not cleared become one
        FOR dev IN SELECT DISTINCT device_id FROM alarms WHERE site_id = fam.site_id
                    AND rule_id = ANY (ids) AND state <> 'cleared' LOOP
            SELECT * INTO keep FROM alarms
             WHERE site_id = fam.site_id AND device_id = dev.device_id AND rule_id = ANY (ids)
               AND state <> 'cleared'
             ORDER BY array_position(sev, severity) DESC, raised_at, id LIMIT 1 FOR UPDATE;
            SELECT work_order_id INTO wo FROM alarms
             WHERE site_id = fam.site_id AND device_id = dev.device_id AND rule_id = ANY (ids)
               AND state <> 'cleared' AND work_order_id IS NOT NULL
             ORDER BY id = keep.id DESC, array_position(sev, severity) DESC, id LIMIT 1;
            WITH gone AS (
                UPDATE alarms SET state = 'cleared', cleared_at = now(), cleared_by = 'migration'
                 WHERE site_id = fam.site_id AND device_id = dev.device_id
                   AND rule_id = ANY (ids) AND state <> 'cleared' AND id <> keep.id
                RETURNING id)
            SELECT array_agg(id ORDER BY id) INTO merged FROM gone;
            INSERT INTO alarm_history (alarm_id, at, action, actor, note)
            SELECT g.id, now(), 'cleared', 'migration',
                   format('merged into alarm %s of rule %s (one fault, one alarm)', keep.id, new_id)
              FROM unnest(merged) AS g(id);
            INSERT INTO alarm_history (alarm_id, at, action, actor, note)
            VALUES (keep.id, now(), 'merged', 'migration',
                    format('rules %s became rule %s with levels', array_to_string(ids, ', '),
                           new_id)
                    || coalesce(format('; alarm(s) %s merged into this one',
                                       array_to_string(merged, ', ')), ''));
            INSERT INTO work_order_history (work_order_id, at, action, actor, note)
            SELECT DISTINCT a.work_order_id, now(), 'merged', 'migration',
                   format('alarm %s merged into alarm %s', a.id, keep.id)
                   || coalesce(format(', whose ticket is #%s', wo), '')
              FROM alarms a WHERE a.id = ANY (merged) AND a.work_order_id IS NOT NULL
               AND a.work_order_id IS DISTINCT FROM wo;
            UPDATE alarms SET work_order_id = wo WHERE id = keep.id;
            SELECT max((state->>'last_ts')::float8) INTO last_ts FROM rule_state
             WHERE site_id = fam.site_id AND device_id = dev.device_id AND rule_id = ANY (ids);
            INSERT INTO merge_state VALUES (fam.site_id, dev.device_id, jsonb_strip_nulls(
                jsonb_build_object('firing', true,
                                   'level', nullif(array_position(level_sev, keep.severity) - 1, 0),
                                   'in_trigger', true, 'last_value', keep.last_value,
                                   'last_ts', last_ts)));
        END LOOP;

        UPDATE alarms SET rule_id = new_id WHERE site_id = fam.site_id AND rule_id = ANY (ids);
        UPDATE work_orders SET rule_id = new_id
         WHERE site_id = fam.site_id AND rule_id = ANY (ids);
        DELETE FROM rule_state WHERE site_id = fam.site_id AND rule_id = ANY (ids);
        DELETE FROM rules WHERE site_id = fam.site_id AND id = ANY (ids);
        INSERT INTO rules (site_id, id, name, kind, metric, enabled, severity, device_type,
                           device_id, params, inhibits, description, created_at, updated_at)
        VALUES (fam.site_id, new_id, first_rule.name, fam.kind, fam.metric, fam.enabled,
                level_sev[array_length(level_sev, 1)], fam.device_type, fam.device_id,
                jsonb_strip_nulls(jsonb_build_object('op', fam.op, 'levels', lvls,
                                                     'window', first_rule.params->'window')),
                inh, first_rule.description, born, now());
        INSERT INTO rule_state (site_id, rule_id, device_id, state, firing, due_at, updated_at)
        SELECT site_id, new_id, device_id, state, true, NULL, now() FROM merge_state;
        DELETE FROM merge_state;

        UPDATE rules r SET inhibits = jsonb_set(r.inhibits, '{rules}', (
                   SELECT jsonb_agg(DISTINCT CASE WHEN e.v = ANY (ids) THEN new_id ELSE e.v END)
                     FROM jsonb_array_elements_text(r.inhibits->'rules') AS e(v)))
         WHERE r.site_id = fam.site_id AND jsonb_typeof(r.inhibits->'rules') = 'array'
           AND r.inhibits->'rules' ?| ids;
        UPDATE devices d SET overrides = (d.overrides - ids) || jsonb_build_object(new_id,
                   jsonb_build_object('levels', (
                       SELECT jsonb_agg(CASE WHEN jsonb_typeof(d.overrides->m.id) = 'object'
                                  THEN l.v || coalesce((
                                      SELECT jsonb_object_agg(o.k, o.v)
                                        FROM jsonb_each(d.overrides->m.id) AS o(k, v)
                                       WHERE o.k IN ('threshold', 'clear', 'for', 'clear_for')),
                                      '{}')
                                  ELSE l.v END ORDER BY l.n)
                         FROM jsonb_array_elements(lvls) WITH ORDINALITY AS l(v, n)
                         JOIN unnest(ids) WITH ORDINALITY AS m(id, n) ON m.n = l.n)))
         WHERE d.site_id = fam.site_id AND jsonb_typeof(d.overrides) = 'object'
           AND d.overrides ?| ids;
    END LOOP;
END
$merge$;
