-- Lanes leave the database: the store's process is the only one that opens
-- its file (serve locks the data directory), so it keeps each lane's count,
-- due time and lease in memory and spares every group commit the statements
-- and B-tree writes that kept a lanes table in step with the deliveries. What
-- a lane is follows from the pending deliveries, which stay durable: this view
-- derives it, for the store when it opens and for `migrate-store`. A lane is
-- due when its head (the pending delivery with the smallest id) is: a retry
-- moved the head's next_attempt, a new delivery's is its creation time.
-- Leases belonged to the process that held them: a lane read here is free.
DROP TABLE lanes;

CREATE VIEW lanes (lane, config_id, pending, next_at, owner, lease_until) AS
	SELECT d.lane, d.config_id, g.pending, d.next_attempt, NULL, 0
	FROM (SELECT lane, MIN(id) AS head, COUNT(*) AS pending
		FROM deliveries INDEXED BY deliveries_lane
		WHERE status = 'pending' GROUP BY lane) g
	JOIN deliveries d ON d.id = g.head;
