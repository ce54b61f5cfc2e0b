-- Deployment targets (where certificates are installed) and the certificate ↔ target binding
-- (certctl's target_ids). Agents come later: agent_id is kept without a foreign key until the
-- agents table exists.
CREATE TABLE deployment_targets (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    type       TEXT NOT NULL,
    agent_id   TEXT,
    config     JSONB NOT NULL DEFAULT '{}',
    enabled    BOOLEAN NOT NULL DEFAULT true,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- certctl's UNIQUE(agent_id, name), with targets not yet bound to an agent unique by name.
CREATE UNIQUE INDEX deployment_targets_name_key ON deployment_targets ((coalesce(agent_id, '')), name);
CREATE INDEX deployment_targets_agent_id_idx ON deployment_targets (agent_id);
CREATE INDEX deployment_targets_created_at_id_idx ON deployment_targets (created_at, id);

CREATE TABLE certificate_target_mappings (
    certificate_id TEXT NOT NULL REFERENCES managed_certificates (id) ON DELETE CASCADE,
    target_id      TEXT NOT NULL REFERENCES deployment_targets (id) ON DELETE RESTRICT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (certificate_id, target_id)
);
CREATE INDEX certificate_target_mappings_target_id_idx ON certificate_target_mappings (target_id);
