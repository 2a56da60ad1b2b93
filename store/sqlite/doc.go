// Package sqlite is the embedded livehooks store: callback configurations and
// the delivery outbox in one SQLite file (WAL, synchronous=FULL by default),
// written through a single connection and read through a separate pool.
package sqlite
