-- The write path pays for every index on every event; these three served
-- only maintenance paths that can do without them:
-- * events_created and deliveries_final: Purge walks events and deliveries in
--   key order (pk, id), which is their creation order, up to the retention
--   cutoff found by a binary search on the key;
-- * lanes_owner: one process owns every leased lane of an SQLite store, so
--   renewing and releasing leases reads lanes_leased.
DROP INDEX events_created;
DROP INDEX deliveries_final;
DROP INDEX lanes_owner;
