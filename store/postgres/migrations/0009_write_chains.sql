-- A node's group commits may be in flight one behind the other on two
-- connections (pipeline.go). Each advances its writer's row from the value
-- the one before it set, so that it waits for that one's commit and fails
-- when that one did not commit. One row per open store; a row untouched for
-- a day is a store that is gone, and the next store to open deletes it.
CREATE TABLE write_chains (
	writer     text PRIMARY KEY,
	seq        bigint NOT NULL,
	started_at timestamptz NOT NULL
);
