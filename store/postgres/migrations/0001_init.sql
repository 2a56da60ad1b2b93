-- Callback configurations, recording events, the delivery outbox, attempts and
-- lanes. Times are timestamptz (microseconds, as the SQLite store keeps them).
-- Keys that are compared as ranges (lane keys start with their config id and
-- '/') use the "C" collation, so that byte order holds whatever the
-- database's default collation is.

CREATE TABLE callbacks (
	id                        text COLLATE "C" PRIMARY KEY,
	project_id                text NOT NULL,
	publish_domain            text NOT NULL,
	app                       text NOT NULL,
	notify_callback_url       text NOT NULL DEFAULT '',
	notify_event_subscription text NOT NULL,  -- comma-separated, in the client's order
	sign_type                 text NOT NULL,
	on_demand_callback_url    text NOT NULL DEFAULT '',
	key_sealed                bytea,          -- Cipher.Seal(key); NULL when there is no key
	disabled_reason           text NOT NULL DEFAULT '',
	create_time               timestamptz NOT NULL,
	update_time               timestamptz NOT NULL
);
-- At most one config per (project, publish_domain, app); also the matching index.
CREATE UNIQUE INDEX callbacks_match ON callbacks (project_id, publish_domain, app);
CREATE INDEX callbacks_list ON callbacks (project_id, create_time, id);

CREATE TABLE events (
	pk              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	uid             text NOT NULL UNIQUE,  -- Event.ID, 32 lowercase hex
	project_id      text NOT NULL,
	type            text NOT NULL,
	publish_domain  text NOT NULL,
	app             text NOT NULL,
	stream          text NOT NULL,
	task_id         text NOT NULL DEFAULT '',
	job_id          text NOT NULL DEFAULT '',
	record_format   text NOT NULL DEFAULT '',
	download_url    text NOT NULL DEFAULT '',
	asset_id        text NOT NULL DEFAULT '',
	file_size       bigint NOT NULL DEFAULT 0,
	record_duration bigint NOT NULL DEFAULT 0,
	start_time      timestamptz,  -- NULL when unknown
	end_time        timestamptz,
	width           integer NOT NULL DEFAULT 0,
	height          integer NOT NULL DEFAULT 0,
	error_message   text NOT NULL DEFAULT '',
	play_url        text NOT NULL DEFAULT '',
	occurred_at     timestamptz NOT NULL,
	created_at      timestamptz NOT NULL   -- ingest time
);
-- Replay (FindEvents) of one app or, for a `*` config, of every app of a
-- domain, in (created_at, pk) order straight from the index.
CREATE INDEX events_replay ON events (project_id, publish_domain, created_at, pk);
-- Purge of old events that no delivery references.
CREATE INDEX events_created ON events (created_at);

CREATE TABLE deliveries (
	id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- within a lane, commit order
	webhook_id   text NOT NULL,
	project_id   text NOT NULL,
	config_id    text COLLATE "C" NOT NULL,  -- no foreign key: final deliveries outlive their config
	lane         text COLLATE "C" NOT NULL,
	event_pk     bigint NOT NULL REFERENCES events (pk),
	event_type   text NOT NULL,
	stream       text NOT NULL,
	status       text NOT NULL,
	attempts     integer NOT NULL DEFAULT 0,
	next_attempt timestamptz NOT NULL,
	created_at   timestamptz NOT NULL,
	updated_at   timestamptz NOT NULL,
	last_status  integer NOT NULL DEFAULT 0,
	last_error   text NOT NULL DEFAULT '',
	latency_ms   bigint NOT NULL DEFAULT 0
);
-- The dispatcher reads a lane's pending deliveries in id order. The pending
-- deliveries of a config are the range [id || '/', id || '0') of this index.
CREATE INDEX deliveries_lane ON deliveries (lane, id) WHERE status = 'pending';
CREATE INDEX deliveries_config ON deliveries (project_id, config_id, id);
CREATE INDEX deliveries_project ON deliveries (project_id, id);
CREATE INDEX deliveries_event ON deliveries (event_pk);
CREATE INDEX deliveries_final ON deliveries (updated_at) WHERE status <> 'pending';

CREATE TABLE attempts (
	delivery_id bigint NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
	n           integer NOT NULL,
	at          timestamptz NOT NULL,
	status_code integer NOT NULL,
	latency_us  bigint NOT NULL,
	response    text NOT NULL,  -- first 1 KiB of the answer
	error       text NOT NULL,
	PRIMARY KEY (delivery_id, n)
);

-- A lane row exists exactly while its (config, stream) has pending deliveries;
-- pending counts them. owner is the node holding the lease (until
-- lease_until), NULL when free. Every enqueue and result updates its lane's
-- row: free space in each page keeps those updates HOT (no index writes).
CREATE TABLE lanes (
	lane        text COLLATE "C" PRIMARY KEY,
	config_id   text COLLATE "C" NOT NULL,
	pending     integer NOT NULL,
	next_at     timestamptz NOT NULL,
	owner       text,
	lease_until timestamptz
) WITH (fillfactor = 70);
CREATE INDEX lanes_free ON lanes (next_at) WHERE owner IS NULL;
CREATE INDEX lanes_leased ON lanes (lease_until) WHERE owner IS NOT NULL;
CREATE INDEX lanes_owner ON lanes (owner) WHERE owner IS NOT NULL;
