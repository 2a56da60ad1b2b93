// Package postgres is the livehooks store on PostgreSQL (pgx), for several
// livehooks nodes sharing one database: a group commit is one round trip
// (DB.Write), lanes are leased with FOR UPDATE SKIP LOCKED, and nodes wake
// each other with LISTEN/NOTIFY (see DB.Listen).
package postgres
