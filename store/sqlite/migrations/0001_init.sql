-- Callback configurations, recording events, the delivery outbox, attempts and
-- lanes. Every time is an INTEGER of Unix microseconds (UTC), the precision
-- PostgreSQL keeps too.

CREATE TABLE callbacks (
	id                        TEXT PRIMARY KEY,
	project_id                TEXT NOT NULL,
	publish_domain            TEXT NOT NULL,
	app                       TEXT NOT NULL,
	notify_callback_url       TEXT NOT NULL DEFAULT '',
	notify_event_subscription TEXT NOT NULL,  -- comma-separated, in the client's order
	sign_type                 TEXT NOT NULL,
	on_demand_callback_url    TEXT NOT NULL DEFAULT '',
	key_sealed                BLOB,           -- Cipher.Seal(key); NULL when there is no key
	disabled_reason           TEXT NOT NULL DEFAULT '',
	create_time               INTEGER NOT NULL,
	update_time               INTEGER NOT NULL
);
-- At most one config per (project, publish_domain, app); also the matching index.
CREATE UNIQUE INDEX callbacks_match ON callbacks (project_id, publish_domain, app);
CREATE INDEX callbacks_list ON callbacks (project_id, create_time, id);

CREATE TABLE events (
	pk              INTEGER PRIMARY KEY,
	uid             TEXT NOT NULL UNIQUE,  -- Event.ID, 32 lowercase hex
	project_id      TEXT NOT NULL,
	type            TEXT NOT NULL,
	publish_domain  TEXT NOT NULL,
	app             TEXT NOT NULL,
	stream          TEXT NOT NULL,
	task_id         TEXT NOT NULL DEFAULT '',
	job_id          TEXT NOT NULL DEFAULT '',
	record_format   TEXT NOT NULL DEFAULT '',
	download_url    TEXT NOT NULL DEFAULT '',
	asset_id        TEXT NOT NULL DEFAULT '',
	file_size       INTEGER NOT NULL DEFAULT 0,
	record_duration INTEGER NOT NULL DEFAULT 0,
	start_time      INTEGER,  -- NULL when unknown
	end_time        INTEGER,
	width           INTEGER NOT NULL DEFAULT 0,
	height          INTEGER NOT NULL DEFAULT 0,
	error_message   TEXT NOT NULL DEFAULT '',
	play_url        TEXT NOT NULL DEFAULT '',
	occurred_at     INTEGER NOT NULL,
	created_at      INTEGER NOT NULL
);
-- Replay (FindEvents) of one app or, for a `*` config, of every app of a
-- domain, in (created_at, pk) order straight from the index.
CREATE INDEX events_replay ON events (project_id, publish_domain, created_at);
-- Purge of old events that no delivery references.
CREATE INDEX events_created ON events (created_at);

CREATE TABLE deliveries (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,  -- ingest order, never reused
	webhook_id   TEXT NOT NULL,
	project_id   TEXT NOT NULL,
	config_id    TEXT NOT NULL,  -- no foreign key: final deliveries outlive their config
	lane         TEXT NOT NULL,
	event_pk     INTEGER NOT NULL REFERENCES events (pk),
	event_type   TEXT NOT NULL,
	stream       TEXT NOT NULL,
	status       TEXT NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_attempt INTEGER NOT NULL,
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL,
	last_status  INTEGER NOT NULL DEFAULT 0,
	last_error   TEXT NOT NULL DEFAULT '',
	latency_ms   INTEGER NOT NULL DEFAULT 0
);
-- The dispatcher reads a lane's pending deliveries in id order; queries must
-- say status = 'pending' literally for SQLite to use this partial index. A
-- lane key starts with its config id and '/', so the pending deliveries of a
-- config are the range [id || '/', id || '0') of this index.
CREATE INDEX deliveries_lane ON deliveries (lane, id) WHERE status = 'pending';
CREATE INDEX deliveries_config ON deliveries (project_id, config_id, id);
CREATE INDEX deliveries_project ON deliveries (project_id, id);
CREATE INDEX deliveries_event ON deliveries (event_pk);
CREATE INDEX deliveries_final ON deliveries (updated_at) WHERE status <> 'pending';

CREATE TABLE attempts (
	delivery_id INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
	n           INTEGER NOT NULL,
	at          INTEGER NOT NULL,
	status_code INTEGER NOT NULL,
	latency_us  INTEGER NOT NULL,
	response    TEXT NOT NULL,  -- first 1 KiB of the answer
	error       TEXT NOT NULL,
	PRIMARY KEY (delivery_id, n)
);

-- A lane row exists exactly while its (config, stream) has pending deliveries;
-- pending counts them. owner is the node holding the lease, NULL when free.
CREATE TABLE lanes (
	lane        TEXT PRIMARY KEY,
	config_id   TEXT NOT NULL,
	pending     INTEGER NOT NULL,
	next_at     INTEGER NOT NULL,
	owner       TEXT,
	lease_until INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX lanes_free ON lanes (next_at) WHERE owner IS NULL;
CREATE INDEX lanes_leased ON lanes (lease_until) WHERE owner IS NOT NULL;
CREATE INDEX lanes_owner ON lanes (owner) WHERE owner IS NOT NULL;
-- The lanes of a config are the key range [id || '/', id || '0').
