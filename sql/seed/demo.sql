-- Demo fixtures (CERTCTL_DEMO_SEED=true; on by default in embedded mode). Idempotent: every
-- insert skips rows that already exist, so it runs on every start without touching edits.
-- The ids match certctl's demo seed so its load scripts and examples work unchanged.

INSERT INTO teams (id, name, description) VALUES
    ('t-platform', 'Platform', 'Platform engineering'),
    ('t-security', 'Security', 'Security engineering'),
    ('t-payments', 'Payments', 'Payments services'),
    ('t-frontend', 'Frontend', 'Web frontends'),
    ('t-data', 'Data', 'Data platform'),
    ('t-devops', 'DevOps', 'Build and release')
ON CONFLICT DO NOTHING;

INSERT INTO owners (id, name, email, team_id) VALUES
    ('o-alice', 'Alice', 'alice@example.com', 't-platform'),
    ('o-bob', 'Bob', 'bob@example.com', 't-security'),
    ('o-carol', 'Carol', 'carol@example.com', 't-payments'),
    ('o-dave', 'Dave', 'dave@example.com', 't-frontend'),
    ('o-eve', 'Eve', 'eve@example.com', 't-data'),
    ('o-frank', 'Frank', 'frank@example.com', 't-devops')
ON CONFLICT DO NOTHING;

INSERT INTO renewal_policies (id, name, renewal_window_days, auto_renew, max_retries, retry_interval_seconds, alert_thresholds_days) VALUES
    ('rp-standard', 'Standard', 30, true, 3, 3600, '[30, 14, 7, 0]'),
    ('rp-urgent', 'Urgent', 14, true, 5, 900, '[14, 7, 3, 0]'),
    ('rp-manual', 'Manual', 30, false, 0, 3600, '[30, 14, 7, 0]')
ON CONFLICT DO NOTHING;

INSERT INTO issuers (id, name, type, config, enabled) VALUES
    ('iss-local', 'Local CA', 'local', '{"validity_days": 90}', true)
ON CONFLICT DO NOTHING;

INSERT INTO certificate_profiles (id, name, description, max_ttl_seconds, allowed_ekus) VALUES
    ('prof-standard-tls', 'Standard TLS', 'Server TLS, 90 days', 7776000, '["serverAuth"]'),
    ('prof-internal-mtls', 'Internal mTLS', 'Client and server auth, 30 days', 2592000, '["serverAuth", "clientAuth"]')
ON CONFLICT DO NOTHING;
