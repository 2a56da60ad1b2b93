// Package pgtest gives tests a fresh PostgreSQL database of their own on the
// test machine's server (127.0.0.1:5432, user postgres, trust), dropped when
// the test ends.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultAdminURL is the PostgreSQL of the test machines;
// LIVEHOOKS_TEST_DATABASE_URL overrides it.
const DefaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL returns the URL of the server's maintenance database.
func AdminURL() string {
	if u := os.Getenv("LIVEHOOKS_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultAdminURL
}

var (
	reachOnce sync.Once
	reachErr  error
)

// Database creates a fresh database and returns its URL; it is dropped when
// the test ends. Without a PostgreSQL to reach the test is skipped, or fails
// when CI is set (in CI it must run).
func Database(t testing.TB) string {
	t.Helper()
	admin := AdminURL()
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
	exec := func(sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
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
