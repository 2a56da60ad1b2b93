-- The durable queue of finished recording files (SPEC §3): a recorder's
-- "file finished" is stored as a job in the same transaction as the stream's
-- state, and probed, uploaded and reported from here. A stream's jobs are
-- worked one at a time in id order, each leased by one node; RECORD_OVER
-- waits for pending_files.

ALTER TABLE streams ADD COLUMN pending_files integer NOT NULL DEFAULT 0;

CREATE TABLE file_jobs (
	id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- commit order within a stream (its row is locked first)
	project_id     text NOT NULL,
	publish_domain text NOT NULL,
	app            text NOT NULL,
	stream         text NOT NULL,
	path           text NOT NULL,
	duration_us    bigint NOT NULL DEFAULT 0,  -- the recorder's measure, 0 when none
	finished_at    timestamptz NOT NULL,
	attempts       integer NOT NULL DEFAULT 0,
	next_attempt   timestamptz NOT NULL,
	last_error     text NOT NULL DEFAULT '',
	owner          text,                        -- the node holding the lease, NULL when free
	lease_until    timestamptz NOT NULL DEFAULT '-infinity',
	done_event     text NOT NULL DEFAULT '',    -- finished: the event whose delivery deletes the local file
	created_at     timestamptz NOT NULL
);
CREATE INDEX file_jobs_stream ON file_jobs (project_id, publish_domain, app, stream, id) WHERE done_event = '';
CREATE INDEX file_jobs_due ON file_jobs (next_attempt) WHERE done_event = '';
CREATE INDEX file_jobs_done ON file_jobs (id) WHERE done_event <> '';
