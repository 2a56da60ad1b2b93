package postgres

import (
	"bytes"
	"context"
	"testing"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/aesgcm"
	"github.com/livehooks/livehooks/store/postgres/pgtest"
	"github.com/livehooks/livehooks/store/storetest"
)

func adminURL() string { return pgtest.AdminURL() }

// testDatabase creates a fresh database and returns its URL (pgtest).
func testDatabase(t testing.TB) string { return pgtest.Database(t) }

func testCipher(t testing.TB) livehooks.Cipher {
	t.Helper()
	c, err := aesgcm.New(bytes.Repeat([]byte{9}, aesgcm.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// openTest opens a store on url, closed when the test ends (before its
// database is dropped).
func openTest(t testing.TB, url string, opts Options) *DB {
	t.Helper()
	opts.URL = url
	if opts.Cipher == nil {
		opts.Cipher = testCipher(t)
	}
	if opts.MaxConns == 0 {
		opts.MaxConns = 4
	}
	db, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) livehooks.Store {
		return openTest(t, testDatabase(t), Options{})
	})
}
