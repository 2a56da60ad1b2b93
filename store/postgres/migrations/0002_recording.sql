-- Recording state of each stream (SPEC §3) and per-domain recording settings.

CREATE TABLE streams (
	project_id      text NOT NULL,
	publish_domain  text NOT NULL,
	app             text NOT NULL,
	stream          text NOT NULL,
	state           text NOT NULL,
	task_id         text NOT NULL DEFAULT '',
	job_id          text NOT NULL DEFAULT '',
	file_seq        integer NOT NULL DEFAULT 0,
	file_started_at timestamptz,
	published_at    timestamptz,
	over_at         timestamptz,
	next_file_at    timestamptz,
	next_timer      timestamptz,  -- the earlier of over_at and next_file_at; NULL when none
	updated_at      timestamptz NOT NULL,
	PRIMARY KEY (project_id, publish_domain, app, stream)
);
CREATE INDEX streams_due ON streams (next_timer) WHERE next_timer IS NOT NULL;

CREATE TABLE domains (
	project_id     text NOT NULL,
	publish_domain text NOT NULL,
	settings       json NOT NULL,  -- the settings without secrets (json keeps any string jsonb would refuse)
	max_pause_ms   bigint NOT NULL,
	storage_secret bytea,          -- Cipher.Seal(secret key); NULL when none
	create_time    timestamptz NOT NULL,
	update_time    timestamptz NOT NULL,
	PRIMARY KEY (project_id, publish_domain)
);
