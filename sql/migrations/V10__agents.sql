-- Agents (certctl's `agents`), the agent side of jobs, and filesystem discovery.

-- Heartbeats are the hottest write in the system: the aggregator flushes the latest beat of every
-- agent in one UPDATE per interval. To keep those updates HOT (heap-only: no index entry written),
-- no index covers a column a heartbeat changes (last_heartbeat_at, hostname, os, architecture,
-- ip_address, version, updated_at), and every page keeps half its room free for new row versions.
-- Autovacuum runs early and unthrottled, so dead versions are pruned before pages fill up.
CREATE TABLE agents (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    hostname          TEXT NOT NULL DEFAULT '',
    status            TEXT NOT NULL DEFAULT 'Online' CHECK (status IN ('Online', 'Offline', 'Retired')),
    last_heartbeat_at TIMESTAMPTZ,
    registered_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- SHA-256 of the agent's key, hex; the key itself is shown once, at registration.
    api_key_hash      TEXT NOT NULL UNIQUE CHECK (api_key_hash ~ '^[0-9a-f]{64}$'),
    os                TEXT NOT NULL DEFAULT '',
    architecture      TEXT NOT NULL DEFAULT '',
    ip_address        TEXT NOT NULL DEFAULT '',
    version           TEXT NOT NULL DEFAULT '',
    retired_at        TIMESTAMPTZ,
    retired_reason    TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
) WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0,
        autovacuum_analyze_scale_factor = 0.05);
-- Keyset pages of the agent list (status/os/version filters ride along this walk).
CREATE INDEX agents_created_at_id_idx ON agents (created_at, id);
-- Each replica's agent directory refreshes from registrations and retirements since its last
-- look (neither column changes on a heartbeat).
CREATE INDEX agents_registered_at_idx ON agents (registered_at);
CREATE INDEX agents_retired_at_idx ON agents (retired_at) WHERE retired_at IS NOT NULL;

ALTER TABLE deployment_targets
    ADD CONSTRAINT deployment_targets_agent_id_fkey FOREIGN KEY (agent_id) REFERENCES agents (id) ON DELETE RESTRICT;

ALTER TABLE audit_events DROP CONSTRAINT audit_events_actor_type_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_actor_type_check
    CHECK (actor_type IN ('api_key', 'anonymous', 'system', 'agent'));

-- The agent side of jobs: the CSR an agent answered an AwaitingCSR job with, the version a
-- deployment installs, and what the agent reported back.
ALTER TABLE jobs ADD COLUMN csr_pem TEXT;
ALTER TABLE jobs ADD COLUMN certificate_version_id TEXT;
ALTER TABLE jobs ADD COLUMN deployment_result JSONB;
ALTER TABLE jobs ADD COLUMN verification_fingerprint TEXT;
-- An agent's work poll: its due deployments, oldest first.
CREATE INDEX jobs_agent_deployments_idx ON jobs (agent_id, scheduled_at, id)
    WHERE status = 'Pending' AND type = 'Deployment';
-- The stale-agent loop hands back Running jobs leased by agents that went offline.
CREATE INDEX jobs_agent_running_idx ON jobs (agent_id) WHERE status IN ('Running', 'AwaitingCSR');

CREATE TABLE discovery_scans (
    id                 TEXT PRIMARY KEY,
    agent_id           TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    directories        TEXT[] NOT NULL DEFAULT '{}',
    certificates_found INTEGER NOT NULL DEFAULT 0,
    certificates_new   INTEGER NOT NULL DEFAULT 0,
    errors_count       INTEGER NOT NULL DEFAULT 0,
    scan_duration_ms   BIGINT NOT NULL DEFAULT 0,
    started_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX discovery_scans_agent_idx ON discovery_scans (agent_id, started_at DESC);

CREATE TABLE discovered_certificates (
    id                     TEXT PRIMARY KEY,
    fingerprint_sha256     TEXT NOT NULL,
    common_name            TEXT NOT NULL DEFAULT '',
    sans                   TEXT[] NOT NULL DEFAULT '{}',
    serial_number          TEXT NOT NULL DEFAULT '',
    issuer_dn              TEXT NOT NULL DEFAULT '',
    subject_dn             TEXT NOT NULL DEFAULT '',
    not_before             TIMESTAMPTZ,
    not_after              TIMESTAMPTZ,
    key_algorithm          TEXT NOT NULL DEFAULT '',
    key_size               INTEGER NOT NULL DEFAULT 0,
    is_ca                  BOOLEAN NOT NULL DEFAULT false,
    pem_data               TEXT NOT NULL DEFAULT '',
    source_path            TEXT NOT NULL,
    source_format          TEXT NOT NULL DEFAULT 'PEM',
    agent_id               TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    discovery_scan_id      TEXT REFERENCES discovery_scans (id) ON DELETE SET NULL,
    managed_certificate_id TEXT REFERENCES managed_certificates (id) ON DELETE SET NULL,
    status                 TEXT NOT NULL DEFAULT 'Unmanaged' CHECK (status IN ('Unmanaged', 'Managed', 'Dismissed')),
    first_seen_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    dismissed_at           TIMESTAMPTZ,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (fingerprint_sha256, agent_id, source_path)
);
CREATE INDEX discovered_certificates_created_at_id_idx ON discovered_certificates (created_at, id);
CREATE INDEX discovered_certificates_agent_idx ON discovered_certificates (agent_id, created_at, id);
CREATE INDEX discovered_certificates_status_idx ON discovered_certificates (status, created_at, id);
CREATE INDEX discovered_certificates_not_after_idx ON discovered_certificates (not_after);
