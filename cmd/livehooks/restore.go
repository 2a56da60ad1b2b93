package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/livehooks/livehooks/aesgcm"
	"github.com/livehooks/livehooks/internal/durable"
	"github.com/livehooks/livehooks/store/sqlite"
)

func newRestoreCommand(e *env) *cobra.Command {
	var dataDir string
	var force bool
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Bring back a store written by livehooks backup into a data directory",
		Long: `Install the store copy FILE (written by "livehooks backup") as the data
directory's SQLite store, with FILE.master.key, FILE.credentials.json and
FILE.download.key when they are beside it. The next "livehooks serve
--data-dir DIR" continues from the copy: every config, event, delivery
(pending ones are delivered) and recording task it holds.

livehooks must not be running on the data directory. A data directory that
already holds a store, or a different master key, credentials or download
key, is left alone unless --force says to replace them. The copy is checked
(integrity, schema version, and that the master key decrypts its keys) and
migrated to this binary's schema before it replaces anything.

For PostgreSQL (--database-url) use pg_restore instead (see the README).`,
		Example: `  livehooks restore /var/backups/livehooks-2026-12-01.db --data-dir /var/lib/livehooks`,
		Args:    exactArgs(1, "restore FILE: give the backup to restore"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return restore(cmd.Context(), e, dataDir, args[0], force)
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "./data", "data directory to restore into")
	envFlag(cmd.Flags(), "data-dir", "LIVEHOOKS_DATA_DIR")
	cmd.Flags().BoolVar(&force, "force", false, "replace the store, master key, credentials and download key the data directory already has")
	return cmd
}

func restore(ctx context.Context, e *env, dataDir, file string, force bool) error {
	if err := refusePostgres(e.getenv, "livehooks restore", "pg_restore"); err != nil {
		return err
	}
	if fi, err := os.Stat(file); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("restore: %s is not a backup file (write one with livehooks backup)", file)
	}
	if fileExists(file + "-wal") {
		return fmt.Errorf("restore: %s has a write-ahead log beside it (%s-wal): it is a store in use or a file copy of one, not a backup; copy it with livehooks backup", file, file)
	}
	summary, err := sqlite.Inspect(ctx, file)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	lock, err := lockDataDir(dataDir)
	if err != nil {
		return fmt.Errorf("restore: %w: stop livehooks first", err)
	}
	defer lock.Close()
	dst := filepath.Join(dataDir, storeFile)
	if fileExists(dst) && !force {
		return fmt.Errorf("restore: %s already holds a store (%s); --force replaces it (back it up first)", dataDir, storeFile)
	}

	// The master key: LIVEHOOKS_MASTER_KEY, else the one saved beside the
	// backup, else the data directory's.
	var installs [][2]string // companion files to put into the data directory
	for _, c := range backupCompanions {
		from, to := file+c.suffix, filepath.Join(dataDir, c.name)
		if !fileExists(from) || (c.name == aesgcm.KeyFile && e.getenv(aesgcm.EnvMasterKey) != "") {
			continue
		}
		if fileExists(to) && !sameFileContent(from, to) && !force {
			return fmt.Errorf("restore: %s differs from %s beside the backup; --force replaces it", to, from)
		}
		installs = append(installs, [2]string{from, to})
	}
	keyFrom := dataDir
	if e.getenv(aesgcm.EnvMasterKey) == "" {
		switch {
		case fileExists(file + ".master.key"):
			keyFrom = ""
		case !fileExists(filepath.Join(dataDir, aesgcm.KeyFile)):
			return fmt.Errorf("restore: no master key: %s.master.key is missing, %s has none and %s is not set; without the key the backup's callback keys cannot be decrypted",
				file, dataDir, aesgcm.EnvMasterKey)
		}
	}
	var key []byte
	if keyFrom == "" {
		key, err = aesgcm.ReadKeyFile(file + ".master.key")
	} else {
		key, err = aesgcm.LoadKey(keyFrom, e.getenv)
	}
	if err != nil {
		return fmt.Errorf("restore: master key: %w", err)
	}
	cipher, err := aesgcm.New(key)
	if err != nil {
		return fmt.Errorf("restore: master key: %w", err)
	}

	// Copy, then open the copy as livehooks would (migrating it to this
	// binary's schema) and decrypt a key, all under a temporary name: the
	// data directory changes only when everything checked out.
	tmp := dst + ".restore-" + randomSuffix()
	defer removeStoreFiles(tmp)
	if err := copyFileExclusive(file, tmp); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	db, err := sqlite.Open(ctx, sqlite.Options{Path: tmp, Cipher: cipher})
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	err = db.CheckSealed(ctx)
	if cerr := db.Close(); err == nil && cerr != nil {
		return fmt.Errorf("restore: %w", cerr)
	}
	if err != nil {
		return fmt.Errorf("restore: %w", wrongMasterKey(err))
	}

	// A WAL or shared-memory file left by the store being replaced belongs
	// to it, not to the copy.
	removeStoreFiles(dst)
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	for _, in := range installs {
		if err := installFile(in[0], in[1]); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	}
	if err := durable.SyncDir(dataDir); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	fmt.Fprintf(e.stdout, "restore: %s now holds %s: %s\n", dataDir, file, summary)
	for _, in := range installs {
		fmt.Fprintf(e.stdout, "restore: installed %s from %s\n", in[1], in[0])
	}
	return nil
}

// removeStoreFiles removes an SQLite file with its WAL and shared memory.
func removeStoreFiles(path string) {
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		_ = os.Remove(path + suffix)
	}
}

// installFile copies from over to atomically, mode 0600.
func installFile(from, to string) error {
	tmp := to + ".restore-" + randomSuffix()
	if err := copyFileExclusive(from, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, to); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
