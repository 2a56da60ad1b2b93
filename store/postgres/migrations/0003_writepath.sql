-- The write path of one round trip per group commit (flush.go): what a
-- transaction took from memory is checked in SQL, and a check that fails
-- aborts the transaction as a serialization failure, which Write runs again.

-- A stream's version counts the writes of its row: a node writes a state it
-- derived from the one it remembers only if no other node wrote one since.
ALTER TABLE streams ADD COLUMN version bigint NOT NULL DEFAULT 1;

-- livehooks_conflict aborts the transaction; detail says what conflicted.
CREATE FUNCTION livehooks_conflict(detail text) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	RAISE EXCEPTION 'livehooks: write conflict' USING ERRCODE = '40001', DETAIL = detail;
END
$$;

-- Foreign keys check every inserted delivery and attempt with a trigger of
-- their own (and lock the row they point to). The store keeps both references
-- itself: a delivery's event is inserted or locked in the same transaction,
-- and Purge and DeleteCallback delete attempts with their deliveries.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_event_pk_fkey;
ALTER TABLE attempts DROP CONSTRAINT attempts_delivery_id_fkey;

-- Retention (Purge) finds old events and deliveries by time, ingest order
-- in which they are stored: a block range index costs next to nothing per
-- row, where a B-tree took a write per event and one per delivery result.
DROP INDEX events_created;
CREATE INDEX events_created ON events USING brin (created_at) WITH (autosummarize = on);
DROP INDEX deliveries_final;
CREATE INDEX deliveries_created ON deliveries USING brin (created_at) WITH (autosummarize = on);
