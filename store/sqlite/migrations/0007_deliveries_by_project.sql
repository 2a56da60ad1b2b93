-- One index serves both delivery-log listings: a project's deliveries in id
-- order, and (with the config id read from the index entry itself, before the
-- row) one config's. deliveries_config, ordered by config first, had one
-- insertion point per config: each group commit wrote a page of it for every
-- config it delivered to (a quarter of the WAL frames with ten configs),
-- where an index in id order writes one. A config's page or count is now an
-- index-only walk of its project's entries, which the keyset pages bound.
CREATE INDEX deliveries_log ON deliveries (project_id, id, config_id);
DROP INDEX deliveries_config;
DROP INDEX deliveries_project;
