-- Deleting a team no longer deletes its owners silently (certctl cascaded, leaving no audit row
-- for the owners it removed): a team that still has owners cannot be deleted.
ALTER TABLE owners DROP CONSTRAINT owners_team_id_fkey;
ALTER TABLE owners ADD CONSTRAINT owners_team_id_fkey FOREIGN KEY (team_id) REFERENCES teams (id) ON DELETE RESTRICT;
