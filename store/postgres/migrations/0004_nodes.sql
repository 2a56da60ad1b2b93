-- The nodes that share this database (SPEC §4). A running node heartbeats
-- its row every second or so; a row whose expires_at has passed is a dead
-- node, whose lanes the live nodes take over at once instead of waiting for
-- their leases to run out. A lane's owner without a row (a node that never
-- heartbeat) is covered by its lease alone.

CREATE TABLE nodes (
	node       text COLLATE "C" PRIMARY KEY,
	seen_at    timestamptz NOT NULL,
	expires_at timestamptz NOT NULL
);
