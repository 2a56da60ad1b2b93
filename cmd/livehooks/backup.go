package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/livehooks/livehooks/aesgcm"
	"github.com/livehooks/livehooks/auth"
	"github.com/livehooks/livehooks/fileserve"
	"github.com/livehooks/livehooks/internal/durable"
	"github.com/livehooks/livehooks/store/sqlite"
)

// storeFile is the embedded store's file in the data directory.
const storeFile = "livehooks.db"

// Files a backup keeps beside the store copy, named FILE + suffix: without
// the master key the callback keys and storage secrets in the copy cannot be
// decrypted, the credentials are what clients and media servers use, and
// the download key signs the links to recordings livehooks serves (links
// already handed out stay valid only with it).
var backupCompanions = []struct{ name, suffix string }{
	{aesgcm.KeyFile, ".master.key"},
	{auth.CredentialsFile, ".credentials.json"},
	{fileserve.KeyFile, ".download.key"},
}

func newBackupCommand(e *env) *cobra.Command {
	var dataDir string
	var withoutSecrets bool
	cmd := &cobra.Command{
		Use:   "backup FILE",
		Short: "Copy the embedded SQLite store consistently, while livehooks runs",
		Long: `Write a consistent copy of the data directory's SQLite store to FILE.

livehooks may keep running: the copy is a snapshot of one transaction taken
by SQLite (VACUUM INTO) through a read-only connection, so ingest and delivery
go on meanwhile and the copy holds every event acknowledged before the backup
started. FILE must not exist.

Beside FILE, backup writes FILE.master.key (the data directory's master key,
mode 0600: without it the callback keys and storage secrets in the copy cannot
be decrypted), FILE.credentials.json (the generated credentials) and
FILE.download.key (the key of served recordings' links), each 0600, when the
data directory has them. With LIVEHOOKS_MASTER_KEY set, keep that value with
the backup yourself. --without-secrets copies none of them: keep them some
other way.

Bring a backup back with "livehooks restore FILE". For PostgreSQL
(--database-url) use pg_dump and pg_restore instead (see the README).`,
		Example: `  livehooks backup /var/backups/livehooks-$(date +%F).db --data-dir /var/lib/livehooks`,
		Args:    exactArgs(1, "backup FILE: give the file to write"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return backup(cmd.Context(), e, dataDir, args[0], !withoutSecrets)
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "./data", "data directory of the store to copy")
	envFlag(cmd.Flags(), "data-dir", "LIVEHOOKS_DATA_DIR")
	cmd.Flags().BoolVar(&withoutSecrets, "without-secrets", false, "do not write FILE.master.key, FILE.credentials.json and FILE.download.key beside the copy")
	return cmd
}

// exactArgs is cobra.ExactArgs with a message that says what to give.
func exactArgs(n int, usage string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return errors.New(usage)
		}
		return nil
	}
}

// refusePostgres stops an embedded-store command run for a PostgreSQL
// deployment, where the database's own tools do the job.
func refusePostgres(getenv func(string) string, command, instead string) error {
	if getenv("LIVEHOOKS_DATABASE_URL") != "" {
		return fmt.Errorf("%s works on the embedded SQLite store, and LIVEHOOKS_DATABASE_URL says this installation uses PostgreSQL: use %s (see the README, \"Backups\")", command, instead)
	}
	return nil
}

func backup(ctx context.Context, e *env, dataDir, target string, withSecrets bool) error {
	if err := refusePostgres(e.getenv, "livehooks backup", "pg_dump"); err != nil {
		return err
	}
	src := filepath.Join(dataDir, storeFile)
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("no store to back up at %s (is --data-dir right?): %w", src, err)
	}
	targets := []string{target}
	if withSecrets {
		for _, c := range backupCompanions {
			if _, err := os.Stat(filepath.Join(dataDir, c.name)); err == nil {
				targets = append(targets, target+c.suffix)
			}
		}
	}
	if fi, err := os.Stat(filepath.Dir(target)); err != nil || !fi.IsDir() {
		return fmt.Errorf("backup: %s is not a directory to write %s into", filepath.Dir(target), filepath.Base(target))
	}
	for _, t := range targets {
		if _, err := os.Lstat(t); err == nil {
			return fmt.Errorf("%s exists: backup never overwrites a file; choose another name or remove it", t)
		}
	}

	summary, err := sqlite.Backup(ctx, src, target)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "backup: wrote %s: %s, a consistent snapshot of %s\n", target, summary, src)
	if withSecrets {
		for _, c := range backupCompanions {
			from, to := filepath.Join(dataDir, c.name), target+c.suffix
			if err := copyFileExclusive(from, to); errors.Is(err, fs.ErrNotExist) && !fileExists(from) {
				continue
			} else if err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			fmt.Fprintf(e.stdout, "backup: wrote %s (mode 0600): keep it with the backup, as safely as the data directory\n", to)
		}
	}
	if e.getenv(aesgcm.EnvMasterKey) != "" {
		fmt.Fprintf(e.stdout, "backup: the master key comes from %s: keep its value with this backup; without it the callback keys in the copy cannot be decrypted\n", aesgcm.EnvMasterKey)
	}
	return durable.SyncDir(filepath.Dir(target))
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// copyFileExclusive copies from to a new 0600 file to, synced.
func copyFileExclusive(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(to)
		return fmt.Errorf("copy %s to %s: %w", from, to, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		os.Remove(to)
		return err
	}
	return out.Close()
}

func sameFileContent(a, b string) bool {
	x, err1 := os.ReadFile(a)
	y, err2 := os.ReadFile(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// wrongMasterKey explains a sealed value that does not open.
func wrongMasterKey(err error) error {
	return fmt.Errorf("the master key in use does not decrypt the store's keys: use the master key of the installation the store comes from (its master.key file or %s): %w", aesgcm.EnvMasterKey, err)
}
