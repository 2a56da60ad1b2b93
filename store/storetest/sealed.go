package storetest

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"testing"

	"github.com/livehooks/livehooks"
)

// SealUnbound seals plain with a 32-byte master key as livehooks did before
// sealed values were bound to their rows (aesgcm format version 1: version,
// nonce, ciphertext and tag, with the version byte as the only additional
// data). Migration tests write such values into a database of the previous
// schema.
func SealUnbound(t testing.TB, key []byte, plain string) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 1+aead.NonceSize())
	out[0] = 1
	if _, err := rand.Read(out[1:]); err != nil {
		t.Fatal(err)
	}
	return aead.Seal(out, out[1:], []byte(plain), out[:1])
}

// SealedRow is a callback config of the previous schema, its key sealed
// unbound (nil: no key), for MigrateBindsSealedValues.
type SealedRow struct {
	ID, ProjectID, PublishDomain string
	KeySealed                    []byte
}

// Backend is what MigrateBindsSealedValues needs of a store under test,
// beyond the store itself: raw access to its database.
type Backend struct {
	// Prepare writes a database of the schema before values were bound
	// (every migration up to, not including, the one named
	// storerow.BindMigration) holding configs and, in project A, the domain
	// a.example.com whose storage secret is secretSealed.
	Prepare func(configs []SealedRow, secretSealed []byte)
	// Open opens the store on that database.
	Open func() livehooks.Store
	// Key reads and SetKey writes a config's key_sealed column directly.
	Key    func(id string) []byte
	SetKey func(id string, sealed []byte)
}

// MigrateBindsSealedValues checks the migration that binds sealed values to
// their rows, on a database whose callback keys and storage secret were
// sealed unbound with master (the 32-byte key of the store's cipher): they
// still open where they are, but neither an unbound value nor a bound one
// moved to another row opens afterwards, even after a restart.
func MigrateBindsSealedValues(t *testing.T, master []byte, b Backend) {
	ctx := context.Background()
	keyA, keyB, secret := "KeyOfConfigInProjectA0123456789", "KeyOfConfigInProjectB0123456789", "StorageSecretOfA"
	unboundA := SealUnbound(t, master, keyA)
	b.Prepare([]SealedRow{
		{ID: "ca", ProjectID: "A", PublishDomain: "a.example.com", KeySealed: unboundA},
		{ID: "cb", ProjectID: "B", PublishDomain: "b.example.com", KeySealed: SealUnbound(t, master, keyB)},
		{ID: "cn", ProjectID: "B", PublishDomain: "n.example.com"},
	}, SealUnbound(t, master, secret))

	s := b.Open()
	for _, want := range []struct{ project, id, key string }{{"A", "ca", keyA}, {"B", "cb", keyB}, {"B", "cn", ""}} {
		c, err := s.FindCallbackByID(ctx, want.project, want.id)
		if err != nil || c.Key != want.key {
			t.Fatalf("config %s after the migration: %v %+v", want.id, err, c)
		}
	}
	d, err := s.FindDomain(ctx, "A", "a.example.com")
	if err != nil || d.Storage == nil || d.Storage.SecretKey != secret {
		t.Fatalf("domain after the migration: %v %+v", err, d)
	}
	s.Close()

	// B's row gets A's key: as it was sealed before the migration, then
	// as the migration sealed it.
	for name, moved := range map[string][]byte{"unbound": unboundA, "bound": b.Key("ca")} {
		b.SetKey("cb", moved)
		s := b.Open()
		if c, err := s.FindCallbackByID(ctx, "B", "cb"); err == nil {
			t.Errorf("A's %s key moved to B's row opened: %q", name, c.Key)
		}
		if c, err := s.FindCallbackByID(ctx, "A", "ca"); err != nil || c.Key != keyA {
			t.Errorf("A's own key: %v", err)
		}
		s.Close()
	}
}
