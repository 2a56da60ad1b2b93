// Package sqlite is the embedded livehooks store: callback configurations and
// the delivery outbox in one SQLite file (WAL, written through a single
// connection, read through a separate pool). A group commit's writes go out
// as a few multi-row statements when it ends (batch.go), and with FULL the
// WAL is fsynced by livehooks before anything is acknowledged (DB.Sync).
package sqlite
