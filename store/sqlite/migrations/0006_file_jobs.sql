-- The durable queue of finished recording files (SPEC §3): a recorder's
-- "file finished" is stored as a job in the same transaction as the stream's
-- state, and probed, uploaded and reported from here. A stream's jobs are
-- worked one at a time in id order; RECORD_OVER waits for pending_files.

ALTER TABLE streams ADD COLUMN pending_files INTEGER NOT NULL DEFAULT 0;

CREATE TABLE file_jobs (
	id             INTEGER PRIMARY KEY AUTOINCREMENT,  -- commit order, never reused
	project_id     TEXT NOT NULL,
	publish_domain TEXT NOT NULL,
	app            TEXT NOT NULL,
	stream         TEXT NOT NULL,
	path           TEXT NOT NULL,
	duration_us    INTEGER NOT NULL DEFAULT 0,  -- the recorder's measure, 0 when none
	finished_at    INTEGER NOT NULL,
	attempts       INTEGER NOT NULL DEFAULT 0,
	next_attempt   INTEGER NOT NULL,
	last_error     TEXT NOT NULL DEFAULT '',
	owner          TEXT,                        -- the node holding the lease, NULL when free
	lease_until    INTEGER NOT NULL DEFAULT 0,
	done_event     TEXT NOT NULL DEFAULT '',    -- finished: the event whose delivery deletes the local file
	created_at     INTEGER NOT NULL
);
-- The unfinished jobs of a stream in order (the head is the one to work).
CREATE INDEX file_jobs_stream ON file_jobs (project_id, publish_domain, app, stream, id) WHERE done_event = '';
CREATE INDEX file_jobs_due ON file_jobs (next_attempt) WHERE done_event = '';
CREATE INDEX file_jobs_done ON file_jobs (id) WHERE done_event <> '';
