package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/aesgcm"
	"github.com/livehooks/livehooks/auth"
	"github.com/livehooks/livehooks/fileserve"
	"github.com/livehooks/livehooks/store/postgres"
	"github.com/livehooks/livehooks/store/sqlite"
	"github.com/livehooks/livehooks/store/storecopy"
)

func newMigrateStoreCommand(e *env) *cobra.Command {
	var from, to string
	var force bool
	cmd := &cobra.Command{
		Use:   "migrate-store --from SOURCE --to TARGET",
		Short: "Copy a store between SQLite and PostgreSQL, everything in it",
		Long: `Copy every callback config, domain setting, event, delivery (pending ones
included, with their attempts and lanes) and stream's recording state from
one store to another: from a data directory's SQLite store to PostgreSQL, or
back. SOURCE and TARGET are each a data directory or a postgres:// URL.

Stop livehooks on both first: a data directory in use, or a database with
live nodes, is refused. Both stores are migrated to this binary's schema, the
source is read in one snapshot and the target written in one transaction (a
failed copy leaves it as it was). A target that already holds data is refused
unless --force, which empties it first.

Keys stay sealed as they are, so the target must be served with the same
master key: LIVEHOOKS_MASTER_KEY, else the SQLite data directory's master.key.
Afterwards "livehooks serve --database-url TARGET" (or --data-dir TARGET)
continues where the source stopped: pending callbacks go out, in order, once.`,
		Example: `  livehooks migrate-store --from ./data --to postgres://livehooks@db/livehooks
  LIVEHOOKS_MASTER_KEY=… livehooks migrate-store --from postgres://livehooks@db/livehooks --to ./data`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return migrateStore(cmd.Context(), e, from, to, force)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&from, "from", "", "the store to copy: a data directory (SQLite) or a postgres:// URL")
	fs.StringVar(&to, "to", "", "the store to fill: a postgres:// URL or a data directory (SQLite)")
	fs.BoolVar(&force, "force", false, "empty a target that holds data before copying into it")
	return cmd
}

func isPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// storeSide is one end of a migration, opened for the checks around the copy.
type storeSide struct {
	spec    string // as given, for messages; a URL is shown without its password
	dataDir string // SQLite
	url     string // PostgreSQL
}

func (s *storeSide) String() string { return s.spec }

func migrateStore(ctx context.Context, e *env, from, to string, force bool) error {
	switch {
	case from == "" || to == "":
		return errors.New("migrate-store needs --from and --to: a data directory and a postgres:// URL, one each")
	case isPostgresURL(from) == isPostgresURL(to):
		return fmt.Errorf("migrate-store copies between SQLite (a data directory) and PostgreSQL (a postgres:// URL); --from %s and --to %s are both %s (for a copy of one engine use livehooks backup or pg_dump)",
			redactURL(from), redactURL(to), map[bool]string{true: "PostgreSQL", false: "data directories"}[isPostgresURL(from)])
	}
	src, dst := newSide(from), newSide(to)
	sqliteSide := src
	if dst.dataDir != "" {
		sqliteSide = dst
	}

	// Neither store may be in use: a copy of a store that changes meanwhile
	// would miss what came later, and a target served meanwhile would mix.
	if src.dataDir != "" && !fileExists(filepath.Join(src.dataDir, storeFile)) {
		return fmt.Errorf("--from %s: no store there (%s is missing)", from, storeFile)
	}
	if dst.dataDir != "" {
		if err := os.MkdirAll(dst.dataDir, 0o700); err != nil {
			return fmt.Errorf("--to: %w", err)
		}
	}
	for _, s := range []*storeSide{src, dst} {
		if s.dataDir != "" {
			lock, err := lockDataDir(s.dataDir)
			if err != nil {
				return fmt.Errorf("%w: stop livehooks first (migrate-store copies a store at rest; livehooks backup copies a running one)", err)
			}
			defer lock.Close()
		}
	}

	cipher, err := migrationCipher(e, sqliteSide.dataDir, src == sqliteSide)
	if err != nil {
		return err
	}
	// Opening each store migrates it to this binary's schema; the source's
	// keys must open with the master key before anything is written.
	for _, s := range []*storeSide{src, dst} {
		if err := s.prepare(ctx, cipher, s == src); err != nil {
			return err
		}
	}

	srcEnd, err := s2endpoint(ctx, src)
	if err != nil {
		return err
	}
	defer srcEnd.Close()
	dstEnd, err := s2endpoint(ctx, dst)
	if err != nil {
		return err
	}
	defer dstEnd.Close()
	fmt.Fprintf(e.stdout, "migrate-store: copying %s to %s\n", src, dst)
	report, err := storecopy.Copy(ctx, srcEnd, dstEnd, storecopy.Options{
		Force: force,
		Progress: func(table string, rows int64) {
			fmt.Fprintf(e.stdout, "  %-10s %d rows\n", table, rows)
		},
	})
	if errors.Is(err, storecopy.ErrTargetNotEmpty) {
		return fmt.Errorf("--to %s: %w; --force empties it first", dst, err)
	}
	if err != nil {
		return err
	}
	// The copied keys open in the target: ids and sealed values arrived
	// together.
	if err := dst.prepare(ctx, cipher, true); err != nil {
		return fmt.Errorf("after the copy: %w", err)
	}
	var total int64
	for _, t := range report.Tables {
		total += t.Rows
	}
	fmt.Fprintf(e.stdout, "migrate-store: done, %d rows in %d tables\n", total, len(report.Tables))
	printNextSteps(e.stdout, e.getenv, src, dst)
	return nil
}

func newSide(spec string) *storeSide {
	if isPostgresURL(spec) {
		return &storeSide{spec: redactURL(spec), url: spec}
	}
	return &storeSide{spec: spec, dataDir: spec}
}

// redactURL hides a URL's password in messages.
func redactURL(s string) string {
	if !isPostgresURL(s) {
		return s
	}
	if cfg, err := pgx.ParseConfig(s); err == nil {
		return fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
	}
	return "the PostgreSQL URL"
}

// migrationCipher is the master key the stores' values are sealed with:
// LIVEHOOKS_MASTER_KEY, else the SQLite data directory's master.key, which
// is never created here (a new key would seal nothing that is copied).
func migrationCipher(e *env, dataDir string, sqliteIsSource bool) (livehooks.Cipher, error) {
	var key []byte
	var err error
	path := filepath.Join(dataDir, aesgcm.KeyFile)
	switch {
	case e.getenv(aesgcm.EnvMasterKey) != "":
		key, err = aesgcm.LoadKey(dataDir, e.getenv)
	case fileExists(path):
		key, err = aesgcm.ReadKeyFile(path)
	case sqliteIsSource:
		return nil, fmt.Errorf("no master key: %s is missing and %s is not set; give the key the store's values are sealed with", path, aesgcm.EnvMasterKey)
	default:
		return nil, fmt.Errorf("no master key: set %s to the key the PostgreSQL nodes use (or put it in %s)", aesgcm.EnvMasterKey, path)
	}
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	return aesgcm.New(key)
}

// prepare opens the side's store with this binary's store package (which
// migrates it), refuses a PostgreSQL database that live nodes use, and with
// checkKeys proves that the master key opens the store's sealed values.
func (s *storeSide) prepare(ctx context.Context, cipher livehooks.Cipher, checkKeys bool) error {
	var store interface {
		CheckSealed(context.Context) error
		Close() error
	}
	if s.dataDir != "" {
		db, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(s.dataDir, storeFile), Cipher: cipher})
		if err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
		store = db
	} else {
		db, err := postgres.Open(ctx, postgres.Options{URL: s.url, Cipher: cipher, MaxConns: 2})
		if err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
		store = db
		live, err := db.LiveNodes(ctx)
		if err != nil {
			db.Close()
			return fmt.Errorf("%s: %w", s, err)
		}
		if len(live) > 0 {
			db.Close()
			return fmt.Errorf("%s: %d livehooks nodes are running on this database (%s): stop them first (migrate-store copies a store at rest)",
				s, len(live), strings.Join(live, ", "))
		}
	}
	defer store.Close()
	if checkKeys {
		if err := store.CheckSealed(ctx); err != nil {
			return fmt.Errorf("%s: %w", s, wrongMasterKey(err))
		}
	}
	return nil
}

func s2endpoint(ctx context.Context, s *storeSide) (storecopy.Endpoint, error) {
	if s.dataDir != "" {
		ep, err := storecopy.SQLite(ctx, filepath.Join(s.dataDir, storeFile))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s, err)
		}
		return ep, nil
	}
	ep, err := storecopy.Postgres(ctx, s.url)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s, err)
	}
	return ep, nil
}

// printNextSteps says what else the target's livehooks needs: the same
// master key and credentials, which live outside the store.
func printNextSteps(w io.Writer, getenv func(string) string, src, dst *storeSide) {
	if dst.url != "" {
		key := "the same " + aesgcm.EnvMasterKey
		if getenv(aesgcm.EnvMasterKey) == "" {
			path := filepath.Join(src.dataDir, aesgcm.KeyFile)
			key = fmt.Sprintf("the master key of %s (copy it into each node's --data-dir, mode 0600, or set %s=$(base64 -w0 %s))", path, aesgcm.EnvMasterKey, path)
		}
		fmt.Fprintf(w, "next: livehooks serve --database-url %s with %s", dst, key)
		if creds := filepath.Join(src.dataDir, auth.CredentialsFile); fileExists(creds) {
			fmt.Fprintf(w, ", the credentials of %s (copy it into each node's --data-dir, or pass --access-key/--token/--ingest-secret)", creds)
		}
		if dl := filepath.Join(src.dataDir, fileserve.KeyFile); fileExists(dl) {
			fmt.Fprintf(w, ", and, for links to served recordings already handed out to stay valid, %s (in each node's --data-dir, or LIVEHOOKS_DOWNLOAD_KEY)", dl)
		}
		fmt.Fprintln(w)
		return
	}
	fmt.Fprintf(w, "next: livehooks serve --data-dir %s with the master key the PostgreSQL nodes use", dst)
	if getenv(aesgcm.EnvMasterKey) != "" && !fileExists(filepath.Join(dst.dataDir, aesgcm.KeyFile)) {
		fmt.Fprintf(w, " (%s, or put it in %s)", aesgcm.EnvMasterKey, filepath.Join(dst.dataDir, aesgcm.KeyFile))
	}
	fmt.Fprintln(w)
}
