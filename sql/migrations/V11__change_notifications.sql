-- Change notifications for the ETag cache: every statement that changes a table a cached list reads
-- sends one NOTIFY (statement-level triggers: one per statement, however many rows), whoever runs
-- it: this server, another replica, the dispatcher, or an operator in psql. The payload is the
-- table's name and the time of the change, so listeners can measure how late they learn of it.
CREATE FUNCTION certctl_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('certctl_changes', TG_TABLE_NAME || ' ' || extract(epoch FROM clock_timestamp())::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER managed_certificates_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON managed_certificates
    FOR EACH STATEMENT EXECUTE FUNCTION certctl_notify_change();
CREATE TRIGGER certificate_target_mappings_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON certificate_target_mappings
    FOR EACH STATEMENT EXECUTE FUNCTION certctl_notify_change();
CREATE TRIGGER jobs_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION certctl_notify_change();
CREATE TRIGGER agents_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON agents
    FOR EACH STATEMENT EXECUTE FUNCTION certctl_notify_change();
CREATE TRIGGER audit_events_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION certctl_notify_change();
CREATE TRIGGER discovered_certificates_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON discovered_certificates
    FOR EACH STATEMENT EXECUTE FUNCTION certctl_notify_change();
