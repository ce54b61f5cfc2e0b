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

INSERT INTO certificate_profiles (id, name, description, max_ttl_seconds, allowed_ekus, allow_short_lived, allowed_key_algorithms) VALUES
    ('prof-short-lived', 'Short-lived', 'Service identities, 24 hours', 86400, '["serverAuth", "clientAuth"]', true,
     '[{"algorithm": "ECDSA", "min_size": 256}, {"algorithm": "RSA", "min_size": 2048}]'),
    ('prof-high-security', 'High security', 'ECDSA P-384 or RSA 3072+, 47 days', 4060800, '["serverAuth"]', false,
     '[{"algorithm": "ECDSA", "min_size": 384}, {"algorithm": "RSA", "min_size": 3072}]')
ON CONFLICT DO NOTHING;

-- Targets are not bound to agents yet (agents come later).
INSERT INTO deployment_targets (id, name, type, config) VALUES
    ('tgt-nginx-prod', 'nginx production', 'nginx', '{"directory": "/etc/nginx/certs"}'),
    ('tgt-nginx-staging', 'nginx staging', 'nginx', '{"directory": "/etc/nginx/certs"}'),
    ('tgt-haproxy-prod', 'HAProxy production', 'haproxy', '{"directory": "/etc/haproxy/certs"}'),
    ('tgt-apache-prod', 'Apache production', 'apache', '{"directory": "/etc/apache2/ssl"}')
ON CONFLICT DO NOTHING;
