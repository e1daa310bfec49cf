ALTER TABLE audit_events ADD COLUMN actor character varying;
