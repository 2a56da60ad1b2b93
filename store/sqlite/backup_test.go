package sqlite

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestBackupWhileWriting: Backup copies a store that is being written to; the
// copy holds everything committed before Backup began, opens with the same
// cipher (CheckSealed) and not with another; a target that exists is refused.
func TestBackupWhileWriting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "livehooks.db")
	db := openTest(t, path, Options{})
	var created atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			c := testConfig("p1", fmt.Sprintf("app%d", i))
			c.Key = secretKey
			if err := db.CreateCallback(ctx, c); err != nil {
				t.Errorf("create: %v", err)
				return
			}
			created.Add(1)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); created.Load() < 50; time.Sleep(time.Millisecond) {
		if t.Failed() || time.Now().After(deadline) {
			t.Fatalf("only %d configs created", created.Load())
		}
	}
	before := created.Load()
	target := filepath.Join(dir, "copy.db")
	s, err := Backup(ctx, path, target)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if s.Configs < before || s.SchemaVersion != SchemaVersion() {
		t.Fatalf("the copy holds %d configs at schema %d; %d were committed before the backup began, schema %d", s.Configs, s.SchemaVersion, before, SchemaVersion())
	}
	if fi, err := os.Stat(target); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the copy: %v %v", err, fi)
	}
	if leftovers, _ := filepath.Glob(target + ".partial-*"); len(leftovers) > 0 {
		t.Fatalf("Backup left %v", leftovers)
	}
	if _, err := Backup(ctx, path, target); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("Backup over an existing file: %v", err)
	}
	if got, err := Inspect(ctx, target); err != nil || got != s {
		t.Fatalf("Inspect of the copy: %+v, %v; Backup said %+v", got, err, s)
	}

	copyDB := openTest(t, target, Options{})
	if err := copyDB.CheckSealed(ctx); err != nil {
		t.Fatalf("CheckSealed with the same cipher: %v", err)
	}
	copyDB.Close()
	wrong := openTest(t, target, Options{Cipher: otherCipher(t)})
	if err := wrong.CheckSealed(ctx); err == nil || !strings.Contains(err.Error(), "decrypt key of callback") {
		t.Fatalf("CheckSealed with another cipher: %v", err)
	}
}

// TestInspectRefusesNewerSchemaAndNonStores: a file a newer livehooks
// migrated, or that is no store, is refused with a message saying so.
func TestInspectRefusesNewerSchemaAndNonStores(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "livehooks.db")
	db := openTest(t, path, Options{})
	if _, err := db.write.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from_the_future', 0)`, SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Inspect(ctx, path); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("schema %d or more", SchemaVersion()+1)) {
		t.Fatalf("Inspect of a newer schema: %v", err)
	}
	other := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(other, []byte("not a database"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Inspect(ctx, other); err == nil || !strings.Contains(err.Error(), "not a livehooks store") {
		t.Fatalf("Inspect of a text file: %v", err)
	}
}
