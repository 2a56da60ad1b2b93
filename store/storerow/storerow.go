// Package storerow is how livehooks' domain values are laid out in the rows
// of every store backend (SQLite, PostgreSQL): the numbered migration files,
// the subscription column, and domain settings with their sealed secret. The
// backends share it so that they cannot drift apart.
package storerow

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/livehooks/livehooks"
)

// Migration is one numbered schema migration.
type Migration struct {
	Version int
	Name    string // file name without .sql
	SQL     string
}

// Migrations reads dir/*.sql from fsys in version order. File names are
// NNNN_description.sql; versions start at 1 and have no gaps.
func Migrations(fsys fs.FS, dir string) ([]Migration, error) {
	names, err := fs.Glob(fsys, dir+"/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_description.sql", base)
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: strings.TrimSuffix(base, ".sql"), SQL: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %s: expected version %d", m.Name, i+1)
		}
	}
	return ms, nil
}

// JoinSubscription is the column form of a subscription list: comma-separated,
// in the client's order.
func JoinSubscription(subs []livehooks.EventType) string {
	var b strings.Builder
	for i, s := range subs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(string(s))
	}
	return b.String()
}

// SplitSubscription reads a subscription column.
func SplitSubscription(s string) []livehooks.EventType {
	if s == "" {
		return []livehooks.EventType{}
	}
	parts := strings.Split(s, ",")
	subs := make([]livehooks.EventType, len(parts))
	for i, p := range parts {
		subs[i] = livehooks.EventType(p)
	}
	return subs
}

// storedDomain is the JSON column of a domain: its settings without secrets,
// with the durations in milliseconds.
type storedDomain struct {
	livehooks.DomainSettings
	PresignExpiryMS int64 `json:"presign_expiry_ms,omitempty"`
	// DownloadURLExpiryMS is absent in rows written before the setting
	// existed: they get the default.
	DownloadURLExpiryMS *int64 `json:"download_url_expiry_ms,omitempty"`
}

// EncodeDomain returns a domain's settings column (JSON, no secret) and its
// storage secret sealed with c (nil when there is none).
func EncodeDomain(d *livehooks.DomainSettings, c livehooks.Cipher) (settings []byte, sealedSecret []byte, err error) {
	expiry := d.DownloadURLExpiry.Milliseconds()
	sd := storedDomain{DomainSettings: *d, DownloadURLExpiryMS: &expiry}
	if d.Storage != nil {
		st := *d.Storage
		sd.Storage = &st
		sd.PresignExpiryMS = d.Storage.PresignExpiry.Milliseconds()
		if st.SecretKey != "" {
			if sealedSecret, err = c.Seal([]byte(st.SecretKey), DomainAD(d.ProjectID, d.PublishDomain)); err != nil {
				return nil, nil, fmt.Errorf("encrypt storage secret: %w", err)
			}
		}
	}
	if settings, err = json.Marshal(sd); err != nil {
		return nil, nil, fmt.Errorf("encode domain: %w", err)
	}
	return settings, sealedSecret, nil
}

// DecodeDomain rebuilds domain settings from their columns, opening the
// sealed storage secret with c. The error never holds the secret.
func DecodeDomain(projectID string, settings []byte, maxPause time.Duration, sealedSecret []byte, created, updated time.Time, c livehooks.Cipher) (*livehooks.DomainSettings, error) {
	var sd storedDomain
	if err := json.Unmarshal(settings, &sd); err != nil {
		return nil, fmt.Errorf("decode domain: %w", err)
	}
	d := sd.DomainSettings
	d.ProjectID, d.MaxPause = projectID, maxPause
	d.CreateTime, d.UpdateTime = created.UTC(), updated.UTC()
	d.DownloadURLExpiry = livehooks.DefaultDownloadURLExpiry
	if sd.DownloadURLExpiryMS != nil {
		d.DownloadURLExpiry = time.Duration(*sd.DownloadURLExpiryMS) * time.Millisecond
	}
	if d.Storage != nil {
		d.Storage.PresignExpiry = time.Duration(sd.PresignExpiryMS) * time.Millisecond
		if sealedSecret != nil {
			secret, err := c.Open(sealedSecret, DomainAD(projectID, d.PublishDomain))
			if err != nil {
				return nil, fmt.Errorf("decrypt storage secret of %s: %w", d.PublishDomain, err)
			}
			d.Storage.SecretKey = string(secret)
		}
	}
	return &d, nil
}

// CallbackAD is the additional data that binds a callback's sealed key to
// its row: a key moved to another config or project does not open.
func CallbackAD(projectID, id string) []byte { return []byte("callback\x00" + projectID + "\x00" + id) }

// DomainAD binds a domain's sealed storage secret to its row.
func DomainAD(projectID, domain string) []byte {
	return []byte("domain\x00" + projectID + "\x00" + domain)
}

// BindMigration names (by suffix) the migration whose transaction seals the
// keys and storage secrets an earlier livehooks sealed unbound again, bound
// to their rows (see Bind).
const BindMigration = "_bind_sealed_values"

// SealedColumn is a column of sealed values; its rows are named by
// project_id and Key, from which AD makes their additional data.
type SealedColumn struct {
	Table, Column, Key string
	AD                 func(projectID, key string) []byte
}

// SealedColumns are every column that holds sealed values.
var SealedColumns = []SealedColumn{
	{Table: "callbacks", Column: "key_sealed", Key: "id", AD: CallbackAD},
	{Table: "domains", Column: "storage_secret", Key: "publish_domain", AD: DomainAD},
}

// Sealed is a sealed value and the additional data of its row.
type Sealed struct {
	Value, AD []byte
}

// Bind seals each value again, bound to its row. It runs once, in the
// migration that introduced bound values: after it, an unbound value (say,
// one restored from an old backup into another row) never opens.
func Bind(c livehooks.Cipher, values []Sealed) error {
	for i := range values {
		plain, err := c.Open(values[i].Value, nil)
		if err != nil {
			return fmt.Errorf("open a value sealed by an earlier livehooks: %w", err)
		}
		if values[i].Value, err = c.Seal(plain, values[i].AD); err != nil {
			return fmt.Errorf("seal: %w", err)
		}
	}
	return nil
}

// Rows are the rows of a query: *sql.Rows and pgx.Rows both are.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// BindColumns binds every value of SealedColumns to its row (Bind), in the
// transaction of the migration named BindMigration. query runs a SELECT and
// returns its rows and how to close them; exec runs an UPDATE with
// placeholders $1, $2 and $3 (SQLite takes them too).
func BindColumns(c livehooks.Cipher, query func(q string) (Rows, func(), error), exec func(q string, args ...any) error) error {
	for _, col := range SealedColumns {
		rows, done, err := query(fmt.Sprintf(`SELECT %s, project_id, %s FROM %s WHERE %[1]s IS NOT NULL`, col.Column, col.Key, col.Table))
		if err != nil {
			return err
		}
		var (
			values []Sealed
			keys   [][2]string
		)
		for rows.Next() {
			var v Sealed
			var k [2]string
			if err := rows.Scan(&v.Value, &k[0], &k[1]); err != nil {
				done()
				return err
			}
			v.AD = col.AD(k[0], k[1])
			values, keys = append(values, v), append(keys, k)
		}
		done()
		if err := rows.Err(); err != nil {
			return err
		}
		if err := Bind(c, values); err != nil {
			return fmt.Errorf("%s.%s: %w", col.Table, col.Column, err)
		}
		update := fmt.Sprintf(`UPDATE %s SET %s = $1 WHERE project_id = $2 AND %s = $3`, col.Table, col.Column, col.Key)
		for i, k := range keys {
			if err := exec(update, values[i].Value, k[0], k[1]); err != nil {
				return err
			}
		}
	}
	return nil
}

// TruncateUTF8 cuts s to at most n bytes without splitting a character (the
// stored first KiB of a receiver's answer).
func TruncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// NewEventID returns a new event id (livehooks.NewEventID).
func NewEventID() string { return livehooks.NewEventID() }
