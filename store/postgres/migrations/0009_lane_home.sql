-- A free lane records the node that should claim it: its home among the
-- live nodes when it was left free (created by a node that is not its home,
-- a retry, a hand-over). A claim then reads its own lanes from lanes_home, a
-- range of one key, where it used to compute the home of every free lane of
-- every node, and walk the dead index entries that lanes created and deleted
-- by the thousand leave between two vacuums. '' is a home not known (a
-- lane made free without a view of the live nodes, or before this
-- migration): those go to the home their key hashes to, as before.
ALTER TABLE lanes ADD COLUMN home text COLLATE "C" NOT NULL DEFAULT '';
CREATE INDEX lanes_home ON lanes (home, next_at) WHERE owner IS NULL;
