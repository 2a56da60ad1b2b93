package sqlite

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestFilesArePrivate: the database and its -wal and -shm files are 0600 in a
// 0755 directory under a 022 umask, and files an earlier version created 0644
// are made 0600 at open.
func TestFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		for _, name := range []string{"livehooks.db", "livehooks.db-wal", "livehooks.db-shm"} {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: %s has mode %v, want 0600", when, name, fi.Mode().Perm())
			}
		}
	}
	path := filepath.Join(dir, "livehooks.db")
	db := openTest(t, path, Options{})
	if _, err := db.write.Exec(`CREATE TABLE perm_probe (x)`); err != nil {
		t.Fatal(err)
	}
	check("new database")
	db.Close()

	for _, name := range []string{"livehooks.db", "livehooks.db-wal", "livehooks.db-shm"} {
		if err := os.Chmod(filepath.Join(dir, name), 0o644); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	// Recreate whichever of -wal and -shm the close removed, as a crash leaves them.
	for _, name := range []string{"livehooks.db-wal", "livehooks.db-shm"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); os.IsNotExist(err) {
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	db = openTest(t, path, Options{})
	if _, err := db.write.Exec(`INSERT INTO perm_probe VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	check("database of an earlier version")
}
