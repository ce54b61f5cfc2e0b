-- certctl initial schema: the inventory's core tables (teams, owners, renewal policies, issuers,
-- certificate profiles, managed certificates) and the API keys the server authenticates with.
-- Ids are TEXT with certctl's prefixes (t-, o-, rp-, iss-, prof-, mc-) so its users' ids move over.
-- Every foreign key has an index so deleting or checking a parent never scans the child table.

CREATE TABLE teams (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE owners (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    email      TEXT NOT NULL DEFAULT '',
    team_id    TEXT REFERENCES teams (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX owners_team_id_idx ON owners (team_id);
CREATE INDEX owners_email_idx ON owners (email);

CREATE TABLE renewal_policies (
    id                     TEXT PRIMARY KEY,
    name                   TEXT NOT NULL UNIQUE,
    renewal_window_days    INTEGER NOT NULL DEFAULT 30 CHECK (renewal_window_days BETWEEN 1 AND 365),
    auto_renew             BOOLEAN NOT NULL DEFAULT true,
    max_retries            INTEGER NOT NULL DEFAULT 3 CHECK (max_retries >= 0),
    retry_interval_seconds INTEGER NOT NULL DEFAULT 3600 CHECK (retry_interval_seconds > 0),
    alert_thresholds_days  JSONB NOT NULL DEFAULT '[30, 14, 7, 0]',
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE issuers (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    type        TEXT NOT NULL,
    config      JSONB NOT NULL DEFAULT '{}',
    enabled     BOOLEAN NOT NULL DEFAULT true,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE certificate_profiles (
    id                     TEXT PRIMARY KEY,
    name                   TEXT NOT NULL UNIQUE,
    description            TEXT NOT NULL DEFAULT '',
    allowed_key_algorithms JSONB NOT NULL DEFAULT '[{"algorithm": "ECDSA", "min_size": 256}, {"algorithm": "RSA", "min_size": 2048}]',
    max_ttl_seconds        INTEGER NOT NULL DEFAULT 7776000 CHECK (max_ttl_seconds > 0),
    allowed_ekus           JSONB NOT NULL DEFAULT '["serverAuth"]',
    allow_short_lived      BOOLEAN NOT NULL DEFAULT false,
    requires_approval      BOOLEAN NOT NULL DEFAULT false,
    enabled                BOOLEAN NOT NULL DEFAULT true,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE managed_certificates (
    id                     TEXT PRIMARY KEY,
    name                   TEXT NOT NULL UNIQUE,
    common_name            TEXT NOT NULL,
    sans                   TEXT[] NOT NULL DEFAULT '{}',
    environment            TEXT NOT NULL DEFAULT '',
    owner_id               TEXT NOT NULL REFERENCES owners (id) ON DELETE RESTRICT,
    team_id                TEXT NOT NULL REFERENCES teams (id) ON DELETE RESTRICT,
    issuer_id              TEXT NOT NULL REFERENCES issuers (id) ON DELETE RESTRICT,
    renewal_policy_id      TEXT NOT NULL REFERENCES renewal_policies (id) ON DELETE RESTRICT,
    certificate_profile_id TEXT REFERENCES certificate_profiles (id) ON DELETE SET NULL,
    status                 TEXT NOT NULL DEFAULT 'Pending' CHECK (status IN
                               ('Pending', 'Active', 'Expiring', 'Expired', 'RenewalInProgress',
                                'Failed', 'Revoked', 'Archived')),
    expires_at             TIMESTAMPTZ,
    tags                   JSONB NOT NULL DEFAULT '{}',
    last_renewal_at        TIMESTAMPTZ,
    last_deployment_at     TIMESTAMPTZ,
    revoked_at             TIMESTAMPTZ,
    revocation_reason      TEXT NOT NULL DEFAULT '',
    source                 TEXT NOT NULL DEFAULT 'API',
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Keyset pagination in creation order (certctl had no index for its cursor).
CREATE INDEX managed_certificates_created_at_id_idx ON managed_certificates (created_at, id);
CREATE INDEX managed_certificates_status_idx ON managed_certificates (status);
CREATE INDEX managed_certificates_expires_at_idx ON managed_certificates (expires_at);
CREATE INDEX managed_certificates_owner_id_idx ON managed_certificates (owner_id);
CREATE INDEX managed_certificates_team_id_idx ON managed_certificates (team_id);
CREATE INDEX managed_certificates_issuer_id_idx ON managed_certificates (issuer_id);
CREATE INDEX managed_certificates_renewal_policy_id_idx ON managed_certificates (renewal_policy_id);
CREATE INDEX managed_certificates_profile_id_idx ON managed_certificates (certificate_profile_id);

-- API keys stored by SHA-256 hash only; the plaintext is shown once when a key is generated.
CREATE TABLE api_keys (
    name       TEXT PRIMARY KEY,
    key_hash   TEXT NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    admin      BOOLEAN NOT NULL DEFAULT false,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- certctl's always-present default renewal policy.
INSERT INTO renewal_policies (id, name, renewal_window_days, auto_renew, max_retries, retry_interval_seconds)
VALUES ('rp-default', 'Default', 30, true, 3, 60);
