package sqlite

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/aesgcm"
	"github.com/livehooks/livehooks/store/storetest"
)

func testCipher(t testing.TB) livehooks.Cipher {
	t.Helper()
	c, err := aesgcm.New(bytes.Repeat([]byte{9}, aesgcm.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func openTest(t testing.TB, path string, opts Options) *DB {
	t.Helper()
	opts.Path = path
	if opts.Cipher == nil {
		opts.Cipher = testCipher(t)
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
		return openTest(t, filepath.Join(t.TempDir(), "livehooks.db"), Options{})
	})
}

func otherCipher(t testing.TB) livehooks.Cipher {
	t.Helper()
	c, err := aesgcm.New(bytes.Repeat([]byte{8}, aesgcm.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
