package aesgcm

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/livehooks/livehooks/internal/durable"
)

// EnvMasterKey is the environment variable that holds the master key, as
// base64 (standard or URL alphabet, padded or not) or as 64 hex digits.
const EnvMasterKey = "LIVEHOOKS_MASTER_KEY"

// KeyFile is the name of the master key file in the data directory.
const KeyFile = "master.key"

// LoadKey returns the master key: from LIVEHOOKS_MASTER_KEY when it is set,
// else from <dataDir>/master.key, which is created (mode 0600, 32 random
// bytes) when it does not exist. An existing key file that group or others
// may access is refused: the key protects every callback key at rest.
func LoadKey(dataDir string, getenv func(string) string) ([]byte, error) {
	return LoadNamedKey(dataDir, KeyFile, EnvMasterKey, "master key", getenv)
}

// LoadNamedKey loads another 32-byte key of the data directory the way
// LoadKey loads the master key: from the environment variable env when it is
// set, else from <dataDir>/<file>, created when missing. what names the key
// in errors.
func LoadNamedKey(dataDir, file, env, what string, getenv func(string) string) ([]byte, error) {
	if getenv != nil {
		if v := getenv(env); v != "" {
			key, err := parseKey(v, what)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", env, err)
			}
			return key, nil
		}
	}
	path := filepath.Join(dataDir, file)
	key, err := readKeyFile(path, what)
	if errors.Is(err, fs.ErrNotExist) {
		return createKeyFile(dataDir, path, what)
	}
	return key, err
}

// ParseKey decodes a 32-byte key written as 64 hex digits or as base64.
// Errors never repeat the input.
func ParseKey(s string) ([]byte, error) { return parseKey(s, "master key") }

func parseKey(s, what string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 2*KeySize {
		if key, err := hex.DecodeString(s); err == nil {
			return key, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(s); err == nil {
			if len(key) != KeySize {
				return nil, fmt.Errorf("%s must decode to %d bytes, got %d", what, KeySize, len(key))
			}
			return key, nil
		}
	}
	return nil, fmt.Errorf("%s must be %d bytes written as base64 or %d hex digits", what, KeySize, 2*KeySize)
}

// readKeyFile reads a key file holding the raw 32 bytes (as LoadKey writes
// it) or the key as hex or base64 text (as an operator may write it).
func readKeyFile(path, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s is not a regular file", what, path)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s %s is accessible by group or others (mode %04o): run chmod 600 %s", what, path, fi.Mode().Perm(), path)
	}
	data, err := io.ReadAll(io.LimitReader(f, 1025))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	if len(data) == KeySize {
		return data, nil
	}
	if len(data) > 1024 {
		return nil, fmt.Errorf("%s %s is too large to be a key", what, path)
	}
	key, err := parseKey(string(data), what)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	return key, nil
}

// createKeyFile writes a new random key. It writes a temporary file, syncs it
// and links it into place, so that a crash never leaves a short key file and
// two processes starting at once end up with the same key.
func createKeyFile(dataDir, path, what string) ([]byte, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	tmp, err := os.CreateTemp(dataDir, "."+filepath.Base(path)+"-*")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if _, err := tmp.Write(key); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		return readKeyFile(path, what) // another process won the race
	} else if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	_ = durable.SyncDir(dataDir) // best effort: make the new name durable
	return key, nil
}
