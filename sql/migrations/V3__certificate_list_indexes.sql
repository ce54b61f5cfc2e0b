-- Indexes for the certificate list: one per sort order, each ending in id (the keyset tie-breaker),
-- and prefix search on name and common name. The expiry sort puts certificates without an expiry
-- last; its expression must match the one in actors/src/queries/certificate_list.rs exactly.
CREATE INDEX managed_certificates_updated_at_id_idx ON managed_certificates (updated_at, id);
CREATE INDEX managed_certificates_expiry_sort_idx
    ON managed_certificates ((coalesce(expires_at, '9999-12-31 23:59:59+00'::timestamptz)), id);
CREATE INDEX managed_certificates_name_id_idx ON managed_certificates (name, id);
-- text_pattern_ops makes LIKE 'prefix%' an index range scan whatever the database's collation.
CREATE INDEX managed_certificates_name_prefix_idx ON managed_certificates (name text_pattern_ops);
CREATE INDEX managed_certificates_common_name_prefix_idx ON managed_certificates (common_name text_pattern_ops);
CREATE INDEX managed_certificates_environment_idx ON managed_certificates (environment);
CREATE INDEX managed_certificates_updated_at_idx ON managed_certificates (updated_at);
