-- Change notifications for the ETag cache: every statement that changes rows of a table a cached
-- list reads sends one NOTIFY (statement-level triggers: one per statement, however many rows),
-- whoever runs it: this server, another replica, the dispatcher, or an operator in psql. A
-- statement that changes no row (a periodic sweep with nothing to do) sends none: the triggers
-- look at their transition table first. The payload is the table's name and the time of the
-- change, so listeners can measure how late they learn of it.
CREATE FUNCTION certctl_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    payload text := TG_TABLE_NAME || ' ' || extract(epoch FROM clock_timestamp())::text;
BEGIN
    -- TRUNCATE triggers have no transition table; the query on it is planned only when reached.
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('certctl_changes', payload);
    ELSIF EXISTS (SELECT 1 FROM changed) THEN
        PERFORM pg_notify('certctl_changes', payload);
    END IF;
    RETURN NULL;
END
$$;

-- A trigger with a transition table serves one event, so each table gets one per event.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['managed_certificates', 'certificate_target_mappings', 'jobs', 'agents', 'audit_events',
                             'discovered_certificates']
    LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS changed '
                       'FOR EACH STATEMENT EXECUTE FUNCTION certctl_notify_change()', t || '_notify_insert', t);
        EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %I REFERENCING NEW TABLE AS changed '
                       'FOR EACH STATEMENT EXECUTE FUNCTION certctl_notify_change()', t || '_notify_update', t);
        EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS changed '
                       'FOR EACH STATEMENT EXECUTE FUNCTION certctl_notify_change()', t || '_notify_delete', t);
        EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION certctl_notify_change()', t || '_notify_truncate', t);
    END LOOP;
END
$$;
