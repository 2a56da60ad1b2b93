-- Recording state of each stream (SPEC §3) and per-domain recording settings.

CREATE TABLE streams (
	project_id      TEXT NOT NULL,
	publish_domain  TEXT NOT NULL,
	app             TEXT NOT NULL,
	stream          TEXT NOT NULL,
	state           TEXT NOT NULL,
	task_id         TEXT NOT NULL DEFAULT '',
	job_id          TEXT NOT NULL DEFAULT '',
	file_seq        INTEGER NOT NULL DEFAULT 0,
	file_started_at INTEGER,
	published_at    INTEGER,
	over_at         INTEGER,
	next_file_at    INTEGER,
	next_timer      INTEGER,  -- the earlier of over_at and next_file_at; NULL when none
	updated_at      INTEGER NOT NULL,
	PRIMARY KEY (project_id, publish_domain, app, stream)
) WITHOUT ROWID;
CREATE INDEX streams_due ON streams (next_timer) WHERE next_timer IS NOT NULL;

CREATE TABLE domains (
	project_id     TEXT NOT NULL,
	publish_domain TEXT NOT NULL,
	settings       TEXT NOT NULL,  -- JSON of the settings without secrets
	max_pause_ms   INTEGER NOT NULL,
	storage_secret BLOB,           -- Cipher.Seal(secret key); NULL when none
	create_time    INTEGER NOT NULL,
	update_time    INTEGER NOT NULL,
	PRIMARY KEY (project_id, publish_domain)
) WITHOUT ROWID;
