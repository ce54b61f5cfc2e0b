-- The ACME server's accounts and the nonces its clients have used.
--
-- An account belongs to one profile's ACME directory (`/acme/profile/{id}/…`): the same key may
-- hold an account under each profile, and is found again by its RFC 7638 thumbprint.
CREATE TABLE acme_server_accounts (
    id            TEXT PRIMARY KEY,
    profile_id    TEXT NOT NULL REFERENCES certificate_profiles (id) ON DELETE RESTRICT,
    -- base64url SHA-256 of the canonical public JWK.
    thumbprint    TEXT NOT NULL,
    -- The canonical public JWK (only the members RFC 7638 hashes).
    jwk           JSONB NOT NULL,
    status        TEXT NOT NULL DEFAULT 'valid' CHECK (status IN ('valid', 'deactivated', 'revoked')),
    contact       TEXT[] NOT NULL DEFAULT '{}',
    tos_agreed    BOOLEAN NOT NULL DEFAULT false,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT acme_server_accounts_key_per_profile UNIQUE (profile_id, thumbprint)
);

-- Nonces are made and checked without the database (an HMAC under the sealing key); this table
-- only makes each one single use across replicas. A row lives as long as its nonce would be
-- accepted, and a sweep deletes it after.
CREATE TABLE acme_nonces_used (
    id          BYTEA PRIMARY KEY,
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX acme_nonces_used_expiry_idx ON acme_nonces_used (expires_at);

-- ACME Renewal Information looks certificates up by serial (RFC 9773 ids carry the serial as DER
-- octets, so leading zeros are dropped on both sides).
CREATE INDEX certificate_versions_serial_idx ON certificate_versions (ltrim(serial_number, '0'));
