-- Issuers beyond the local CA: orders placed with remote CAs (the CA poller's queue), ACME
-- accounts, ACME http-01 answers any replica can serve, revocations still to be told to a
-- remote CA, and issuer secrets that keep their stored value when a client sends them back
-- masked.

-- A job whose order is with a remote CA: no lease and no dispatcher slot while the CA thinks;
-- the CA poller owns it until the order is issued, rejected, or its poll budget runs out.
ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check CHECK (status IN
    ('Pending', 'AwaitingCSR', 'AwaitingApproval', 'AwaitingCA', 'Running', 'Completed', 'Failed', 'Cancelled'));
-- The queue-depth gauge counts them without reading the others.
CREATE INDEX jobs_awaiting_ca_idx ON jobs (updated_at) WHERE status = 'AwaitingCA';
DROP INDEX jobs_one_active_renewal_idx;
CREATE UNIQUE INDEX jobs_one_active_renewal_idx ON jobs (certificate_id)
    WHERE type IN ('Issuance', 'Renewal') AND status IN ('Pending', 'AwaitingCSR', 'AwaitingApproval', 'AwaitingCA', 'Running');

-- One order per submission to a remote CA. The intent (state `new`) is written in the same
-- statement that moves the job to AwaitingCA; the poller marks it `submitting` when it claims
-- it, calls the CA, then records the CA's id (`pending`). An order found `submitting` after a
-- crash is resolved by the CA's own lookup, never by submitting again. An order whose poll budget
-- ran out keeps its CA id with no `next_poll_at` (parked) until the job is claimed again.
CREATE TABLE ca_orders (
    id                TEXT PRIMARY KEY,
    job_id            TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    certificate_id    TEXT NOT NULL REFERENCES managed_certificates (id) ON DELETE CASCADE,
    issuer_id         TEXT NOT NULL REFERENCES issuers (id) ON DELETE RESTRICT,
    state             TEXT NOT NULL CHECK (state IN ('new', 'submitting', 'pending', 'issued', 'failed', 'cancelled')),
    -- The job's attempt that handed the order over: results are written only under it.
    job_attempts      INTEGER NOT NULL,
    -- What was asked: names, key usages, lifetime (the connector's `OrderRequest`).
    request           JSONB NOT NULL,
    csr_pem           TEXT NOT NULL,
    -- The server-generated key the CSR was made with (CERTCTL_KEYGEN_MODE=server), sealed.
    private_key_sealed BYTEA,
    -- The CA's reference for the order and whatever else its connector keeps (ACME order URL,
    -- DigiCert certificate id…).
    external_id       TEXT,
    external_state    JSONB NOT NULL DEFAULT '{}',
    polls             INTEGER NOT NULL DEFAULT 0,
    next_poll_at      TIMESTAMPTZ,
    -- The current backoff step, seconds.
    poll_interval     DOUBLE PRECISION NOT NULL DEFAULT 0,
    -- When the job last handed the order to the poller: its poll budget counts from here, and
    -- past it the job goes back to the scheduler and the order is parked.
    handed_over_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error        TEXT NOT NULL DEFAULT '',
    submitted_at      TIMESTAMPTZ,
    issued_at         TIMESTAMPTZ,
    serial_number     TEXT,
    version_id        TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- One live order per job, whatever hands it over twice.
CREATE UNIQUE INDEX ca_orders_one_live_per_job_idx ON ca_orders (job_id) WHERE state IN ('new', 'submitting', 'pending');
-- The poller's claim walks due live orders in time order.
CREATE INDEX ca_orders_due_idx ON ca_orders (next_poll_at)
    WHERE state IN ('new', 'submitting', 'pending') AND next_poll_at IS NOT NULL;
CREATE INDEX ca_orders_issuer_live_idx ON ca_orders (issuer_id) WHERE state IN ('new', 'submitting', 'pending');
-- An ACME issuer's CA chain is the one its newest certificate came with.
CREATE INDEX ca_orders_issued_idx ON ca_orders (issuer_id, issued_at DESC) WHERE state = 'issued';
-- Revoking at the CA finds the order that issued a serial.
CREATE INDEX ca_orders_serial_idx ON ca_orders (issuer_id, serial_number) WHERE serial_number IS NOT NULL;

-- An ACME issuer's account: created once per directory, its credentials (key included) sealed.
CREATE TABLE acme_accounts (
    issuer_id          TEXT PRIMARY KEY REFERENCES issuers (id) ON DELETE CASCADE,
    directory_url      TEXT NOT NULL,
    account_url        TEXT NOT NULL,
    credentials_sealed BYTEA NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- http-01 answers: whichever replica the CA's validation request reaches serves the key
-- authorization. Rows are removed once their order is no longer pending.
CREATE TABLE acme_http01_tokens (
    token             TEXT PRIMARY KEY,
    key_authorization TEXT NOT NULL,
    order_id          TEXT NOT NULL REFERENCES ca_orders (id) ON DELETE CASCADE,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX acme_http01_tokens_order_idx ON acme_http01_tokens (order_id);

-- Revocations still to be told to a remote CA are retried until the CA accepts them.
ALTER TABLE certificate_revocations
    ADD COLUMN notify_attempts INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN next_notify_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    ADD COLUMN notify_error    TEXT NOT NULL DEFAULT '';
CREATE INDEX certificate_revocations_unnotified_idx ON certificate_revocations (next_notify_at)
    WHERE NOT issuer_notified;

-- A config sent back as the API showed it keeps its secrets: a top-level field whose new value
-- is the mask "***" keeps the stored value (sealed, since V12 seals issuer secrets).
CREATE FUNCTION certctl_keep_masked(stored jsonb, incoming jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_object_agg(k, CASE WHEN v = '"***"'::jsonb AND stored ? k THEN stored -> k ELSE v END),
                    '{}'::jsonb)
      FROM jsonb_each(incoming) AS e(k, v)
$$;
