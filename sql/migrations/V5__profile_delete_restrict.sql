-- Deleting a profile no longer clears it silently from its certificates (certctl's SET NULL
-- changed certificates without an audit row): a profile in use cannot be deleted.
ALTER TABLE managed_certificates DROP CONSTRAINT managed_certificates_certificate_profile_id_fkey;
ALTER TABLE managed_certificates ADD CONSTRAINT managed_certificates_certificate_profile_id_fkey
    FOREIGN KEY (certificate_profile_id) REFERENCES certificate_profiles (id) ON DELETE RESTRICT;
