-- One index serves both delivery-log listings: a project's deliveries in id
-- order, and one config's, whose id is an index condition checked on the
-- index entry before the row is read. deliveries_config, ordered by config
-- first, had one insertion point per config: each group commit wrote a page
-- of it for every config it delivered to, where an index in id order writes
-- one; and it was a second index to maintain per delivery.
CREATE INDEX deliveries_log ON deliveries (project_id, id, config_id);
DROP INDEX deliveries_config;
DROP INDEX deliveries_project;
