-- The renewal engine: when each certificate is due (renew_at), the jobs that renew it, the local
-- CA's persistent key pair, sealed secrets, and revocations.

-- Fraction of a certificate's lifetime after which it is renewed when the renewal window would
-- come later (2/3, as Let's Encrypt advises for short lifetimes).
ALTER TABLE renewal_policies
    ADD COLUMN renew_at_fraction DOUBLE PRECISION NOT NULL DEFAULT 0.6667
        CHECK (renew_at_fraction > 0 AND renew_at_fraction < 1);

-- When the certificate is next due. New certificates are due at once (their first issuance);
-- issuing a version moves it to min(not_after - window, not_before + fraction * lifetime).
ALTER TABLE managed_certificates ADD COLUMN renew_at TIMESTAMPTZ DEFAULT now();
UPDATE managed_certificates m
   SET renew_at = m.expires_at - make_interval(days => p.renewal_window_days)
  FROM renewal_policies p
 WHERE p.id = m.renewal_policy_id AND m.expires_at IS NOT NULL;
-- The renewal scan walks this index in (renew_at, id) keyset batches; only states that renew
-- are in it, so archived, revoked and failed certificates cost the scan nothing.
CREATE INDEX managed_certificates_renew_at_idx ON managed_certificates (renew_at, id)
    WHERE status IN ('Pending', 'Active', 'Expiring', 'Expired') AND renew_at IS NOT NULL;
-- The short-lived expiry loop finds rows that newly expired without reading the others.
CREATE INDEX managed_certificates_live_expiry_idx ON managed_certificates (expires_at)
    WHERE status IN ('Active', 'Expiring');

-- certctl's jobs (Issuance, Renewal, Deployment, Validation), with the fields its model lacked:
-- a lease for Running jobs, a retry time, the failure class.
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    type             TEXT NOT NULL CHECK (type IN ('Issuance', 'Renewal', 'Deployment', 'Validation')),
    certificate_id   TEXT NOT NULL REFERENCES managed_certificates (id) ON DELETE CASCADE,
    target_id        TEXT REFERENCES deployment_targets (id) ON DELETE SET NULL,
    agent_id         TEXT,
    status           TEXT NOT NULL DEFAULT 'Pending' CHECK (status IN
                         ('Pending', 'AwaitingCSR', 'AwaitingApproval', 'Running', 'Completed', 'Failed', 'Cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 4 CHECK (max_attempts >= 1),
    last_error       TEXT NOT NULL DEFAULT '',
    error_class      TEXT CHECK (error_class IN
                         ('timeout', 'rate_limited', 'upstream_5xx', 'upstream_4xx', 'validation', 'network', 'internal')),
    scheduled_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- A Failed job with attempts left is retried at this time; NULL when it failed for good.
    retry_at         TIMESTAMPTZ,
    lease_expires_at TIMESTAMPTZ,
    started_at       TIMESTAMPTZ,
    completed_at     TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- At most one active issuance or renewal per certificate, whoever enqueues it (scan, API, bulk,
-- another replica): enqueueing is INSERT … ON CONFLICT DO NOTHING against this index.
CREATE UNIQUE INDEX jobs_one_active_renewal_idx ON jobs (certificate_id)
    WHERE type IN ('Issuance', 'Renewal') AND status IN ('Pending', 'AwaitingCSR', 'AwaitingApproval', 'Running');
-- The renewal dispatcher claims due Pending issuances and renewals in this order (deployment
-- jobs, claimed by agents, never sit in front of them).
CREATE INDEX jobs_pending_renewal_idx ON jobs (scheduled_at, id)
    WHERE status = 'Pending' AND type IN ('Issuance', 'Renewal');
CREATE INDEX jobs_pending_other_idx ON jobs (scheduled_at, id)
    WHERE status = 'Pending' AND type NOT IN ('Issuance', 'Renewal');
-- The reaper finds Running jobs whose lease ran out.
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE status = 'Running';
-- The retry loop finds failed jobs whose retry time came.
CREATE INDEX jobs_retry_idx ON jobs (retry_at) WHERE status = 'Failed' AND retry_at IS NOT NULL;
CREATE INDEX jobs_awaiting_idx ON jobs (updated_at) WHERE status IN ('AwaitingCSR', 'AwaitingApproval');
CREATE INDEX jobs_certificate_idx ON jobs (certificate_id, created_at DESC, id DESC);
CREATE INDEX jobs_created_at_id_idx ON jobs (created_at, id);

-- The key every sealed secret is encrypted under is derived from CERTCTL_CONFIG_ENCRYPTION_KEY
-- with PBKDF2-HMAC-SHA256 and this salt; `check` is a known value sealed with it, so a replica
-- started with a different key is refused with a clear message instead of failing later.
CREATE TABLE secret_sealing (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    salt       BYTEA NOT NULL,
    iterations INTEGER NOT NULL,
    check_blob BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A local issuer's CA: generated once and shared by every replica (certctl regenerated it at
-- every restart and orphaned every chain it had issued).
CREATE TABLE issuer_ca (
    issuer_id      TEXT PRIMARY KEY REFERENCES issuers (id) ON DELETE CASCADE,
    key_algorithm  TEXT NOT NULL,
    cert_pem       TEXT NOT NULL,
    chain_pem      TEXT NOT NULL DEFAULT '',
    key_sealed     BYTEA NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Server-generated private keys (CERTCTL_KEYGEN_MODE=server), sealed, for the agent to fetch once.
ALTER TABLE certificate_versions ADD COLUMN private_key_sealed BYTEA;
ALTER TABLE certificate_versions ADD COLUMN issuer_id TEXT;

CREATE TABLE certificate_revocations (
    id                TEXT PRIMARY KEY,
    certificate_id    TEXT NOT NULL REFERENCES managed_certificates (id) ON DELETE CASCADE,
    serial_number     TEXT NOT NULL,
    reason            TEXT NOT NULL,
    revoked_by        TEXT NOT NULL,
    revoked_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    issuer_id         TEXT NOT NULL,
    issuer_notified   BOOLEAN NOT NULL DEFAULT false,
    UNIQUE (issuer_id, serial_number)
);
CREATE INDEX certificate_revocations_certificate_idx ON certificate_revocations (certificate_id);
CREATE INDEX certificate_revocations_revoked_at_idx ON certificate_revocations (revoked_at);
