package postgres

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/aesgcm"
	"github.com/livehooks/livehooks/store/storetest"
)

// defaultTestURL is the PostgreSQL of the test machines (user postgres,
// trust authentication); LIVEHOOKS_TEST_DATABASE_URL overrides it.
const defaultTestURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

func adminURL() string {
	if u := os.Getenv("LIVEHOOKS_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return defaultTestURL
}

var (
	reachOnce sync.Once
	reachErr  error
)

// testDatabase creates a fresh database and returns its URL; it is dropped
// when the test ends. Without a PostgreSQL to reach the test is skipped, or
// fails under CI.
func testDatabase(t testing.TB) string {
	t.Helper()
	admin := adminURL()
	reachOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err == nil {
			conn.Close(ctx)
		}
		reachErr = err
	})
	if reachErr != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("PostgreSQL is not reachable (%v): start one on 127.0.0.1:5432 or set LIVEHOOKS_TEST_DATABASE_URL", reachErr)
		}
		t.Fatalf("PostgreSQL is not reachable under CI: %v", reachErr)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "livehooks_test_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	exec := func(sql string) error {
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		if err := exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

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
