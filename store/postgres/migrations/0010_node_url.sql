-- The URL at which each node's API is reached by the others (serve
-- --advertise-url; '' when it advertises none): a node that takes an ingest
-- whose lanes are homed at another node forwards it there, so that a
-- stream's writes and deliveries stay on one node.
ALTER TABLE nodes ADD COLUMN url text NOT NULL DEFAULT '';
