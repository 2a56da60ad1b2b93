package aesgcm_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/livehooks/livehooks/aesgcm"
	"github.com/livehooks/livehooks/store/storetest"
)

func testKey(t *testing.T) []byte {
	t.Helper()
	return bytes.Repeat([]byte{0x42}, aesgcm.KeySize)
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	c, err := aesgcm.New(testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, plain := range []string{"", "k", "abcdefghijklmnopqrstuvwxyz0123456789", strings.Repeat("x", 4096)} {
		sealed, err := c.Seal([]byte(plain), []byte("p1/c1"))
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) != len(plain)+aesgcm.Overhead {
			t.Errorf("sealed length = %d, want %d", len(sealed), len(plain)+aesgcm.Overhead)
		}
		if len(plain) > 4 && bytes.Contains(sealed, []byte(plain)) {
			t.Errorf("sealed value contains the plaintext")
		}
		got, err := c.Open(sealed, []byte("p1/c1"))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != plain {
			t.Errorf("Open = %q, want %q", got, plain)
		}
	}
}

// TestSealedValueIsBoundToItsRow: a value opens only with the additional data
// it was sealed with; a value of the unbound format (version 1, sealed by an
// earlier livehooks) opens only with a nil ad, as a migration reads it.
func TestSealedValueIsBoundToItsRow(t *testing.T) {
	t.Parallel()
	c, _ := aesgcm.New(testKey(t))
	sealed, _ := c.Seal([]byte("key"), []byte("p1/c1"))
	for _, ad := range [][]byte{[]byte("p1/c2"), []byte("p2/c1"), nil, {}} {
		if _, err := c.Open(sealed, ad); !errors.Is(err, aesgcm.ErrDecrypt) {
			t.Errorf("Open with ad %q: err = %v, want ErrDecrypt", ad, err)
		}
	}
	legacy := storetest.SealUnbound(t, testKey(t), "key")
	if plain, err := c.Open(legacy, nil); err != nil || string(plain) != "key" {
		t.Fatalf("Open of an unbound value with a nil ad: %q %v", plain, err)
	}
	for _, ad := range [][]byte{[]byte("p1/c1"), {}} {
		if _, err := c.Open(legacy, ad); !errors.Is(err, aesgcm.ErrDecrypt) {
			t.Errorf("Open of an unbound value with ad %q: err = %v, want ErrDecrypt", ad, err)
		}
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	t.Parallel()
	c, _ := aesgcm.New(testKey(t))
	a, _ := c.Seal([]byte("same plaintext"), nil)
	b, _ := c.Seal([]byte("same plaintext"), nil)
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same plaintext are equal: nonce reused")
	}
}

func TestOpenDetectsTampering(t *testing.T) {
	t.Parallel()
	c, _ := aesgcm.New(testKey(t))
	sealed, _ := c.Seal([]byte("0123456789abcdefghijABCDEFGHIJ0123"), []byte("p1/c1"))
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x01
		if _, err := c.Open(bad, []byte("p1/c1")); err == nil {
			t.Errorf("flipping a bit of byte %d went undetected", i)
		}
	}
	for _, n := range []int{0, 1, aesgcm.Overhead - 1, len(sealed) - 1} {
		if _, err := c.Open(sealed[:n], []byte("p1/c1")); err == nil {
			t.Errorf("truncation to %d bytes went undetected", n)
		}
	}
	other, _ := aesgcm.New(bytes.Repeat([]byte{7}, aesgcm.KeySize))
	if _, err := other.Open(sealed, []byte("p1/c1")); !errors.Is(err, aesgcm.ErrDecrypt) {
		t.Errorf("Open with another key: err = %v, want ErrDecrypt", err)
	}
}

func TestNewRejectsBadKeySize(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 16, 24, 31, 33} {
		if _, err := aesgcm.New(make([]byte, n)); err == nil {
			t.Errorf("New with a %d-byte key succeeded", n)
		}
	}
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadKeyFromEnv(t *testing.T) {
	t.Parallel()
	want := make([]byte, aesgcm.KeySize)
	for i := range want {
		want[i] = byte(i * 7)
	}
	for name, v := range map[string]string{
		"hex":        hex.EncodeToString(want),
		"HEX":        strings.ToUpper(hex.EncodeToString(want)),
		"base64":     base64.StdEncoding.EncodeToString(want),
		"raw base64": base64.RawStdEncoding.EncodeToString(want),
		"url base64": base64.RawURLEncoding.EncodeToString(want),
		"spaces":     " " + hex.EncodeToString(want) + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			got, err := aesgcm.LoadKey(dir, env(map[string]string{aesgcm.EnvMasterKey: v}))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("key = %x, want %x", got, want)
			}
			if _, err := os.Stat(filepath.Join(dir, aesgcm.KeyFile)); !os.IsNotExist(err) {
				t.Errorf("a key file was created although the environment had the key")
			}
		})
	}
}

func TestLoadKeyFromEnvRejectsBadValues(t *testing.T) {
	t.Parallel()
	secretish := "c2VjcmV0LXRoYXQtaXMtdG9vLXNob3J0"
	for _, v := range []string{"short", hex.EncodeToString(make([]byte, 16)), secretish, strings.Repeat("z", 64)} {
		_, err := aesgcm.LoadKey(t.TempDir(), env(map[string]string{aesgcm.EnvMasterKey: v}))
		if err == nil {
			t.Errorf("LoadKey accepted %q", v)
			continue
		}
		if strings.Contains(err.Error(), v) {
			t.Errorf("error %q repeats the key", err)
		}
	}
}

func TestLoadKeyCreatesFile(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	key, err := aesgcm.LoadKey(dir, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != aesgcm.KeySize {
		t.Fatalf("key length = %d", len(key))
	}
	fi, err := os.Stat(filepath.Join(dir, aesgcm.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %04o, want 0600", fi.Mode().Perm())
	}
	again, err := aesgcm.LoadKey(dir, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(key, again) {
		t.Fatal("second LoadKey returned another key")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("data dir holds %d entries, want only the key file", len(entries))
	}
}

func TestLoadKeyConcurrentCreation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := aesgcm.LoadKey(dir, env(nil))
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if !bytes.Equal(k, keys[0]) {
			t.Fatal("concurrent LoadKey calls returned different keys")
		}
	}
}

func TestLoadKeyRefusesOpenPermissions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, aesgcm.KeyFile)
	if err := os.WriteFile(path, make([]byte, aesgcm.KeySize), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := aesgcm.LoadKey(dir, env(nil))
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: err = %v, want a refusal naming chmod 600", mode, err)
		}
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := aesgcm.LoadKey(dir, env(nil)); err != nil {
		t.Errorf("mode 0400 refused: %v", err)
	}
}

func TestLoadKeyFileFormats(t *testing.T) {
	t.Parallel()
	want := bytes.Repeat([]byte{0xA5}, aesgcm.KeySize)
	for name, content := range map[string][]byte{
		"raw":    want,
		"hex":    []byte(hex.EncodeToString(want) + "\n"),
		"base64": []byte(base64.StdEncoding.EncodeToString(want) + "\n"),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, aesgcm.KeyFile), content, 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := aesgcm.LoadKey(dir, env(nil))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("key = %x", got)
			}
		})
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, aesgcm.KeyFile), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := aesgcm.LoadKey(dir, env(nil)); err == nil {
		t.Error("a bad key file was accepted")
	}
}

func FuzzOpen(f *testing.F) {
	c, _ := aesgcm.New(bytes.Repeat([]byte{1}, aesgcm.KeySize))
	const secret = "0123456789abcdefghijABCDEFGHIJ0123"
	good, _ := c.Seal([]byte(secret), []byte("p1/c1"))
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Only a value sealed with this key may open (the seed, possibly
		// sealed by another fuzz process): anything else would be a forgery.
		if plain, err := c.Open(b, []byte("p1/c1")); err == nil && string(plain) != secret {
			t.Fatalf("Open accepted a value that Seal did not produce: %x", b)
		}
	})
}
