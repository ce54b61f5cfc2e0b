-- Issued versions of a certificate (certctl's certificate_versions): one row per certificate an
-- issuer produced, newest first per certificate. Written by the renewal engine.
CREATE TABLE certificate_versions (
    id                 TEXT PRIMARY KEY,
    certificate_id     TEXT NOT NULL REFERENCES managed_certificates (id) ON DELETE CASCADE,
    serial_number      TEXT NOT NULL,
    not_before         TIMESTAMPTZ NOT NULL,
    not_after          TIMESTAMPTZ NOT NULL,
    fingerprint_sha256 TEXT NOT NULL UNIQUE,
    pem_chain          TEXT NOT NULL,
    csr_pem            TEXT NOT NULL DEFAULT '',
    key_algorithm      TEXT NOT NULL DEFAULT '',
    key_size           INTEGER NOT NULL DEFAULT 0,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX certificate_versions_certificate_created_idx ON certificate_versions (certificate_id, created_at DESC, id DESC);
