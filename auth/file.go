package auth

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/internal/durable"
)

// CredentialsFile is the name of the credentials file in a data directory.
const CredentialsFile = "credentials.json"

// File is the credentials file of a data directory: the access keys, tokens and
// ingest secrets livehooks generated at first start or that were rotated since.
// It is not safe for concurrent use.
type File struct {
	AccessKeys    []AccessKey
	Tokens        []Token
	IngestSecrets []IngestSecret
}

// The on-disk form. Field names are part of the file format: keep them.
type fileJSON struct {
	AccessKeys    []accessKeyJSON    `json:"access_keys"`
	Tokens        []tokenJSON        `json:"tokens"`
	IngestSecrets []ingestSecretJSON `json:"ingest_secrets"`
}

type accessKeyJSON struct {
	AK       string   `json:"access_key"`
	SK       string   `json:"secret_key"`
	Projects []string `json:"projects"`
}

type tokenJSON struct {
	Token    string   `json:"token"`
	Projects []string `json:"projects"`
}

type ingestSecretJSON struct {
	Project string `json:"project"`
	Secret  string `json:"secret"`
}

// Path returns the path of the credentials file in dataDir.
func Path(dataDir string) string { return filepath.Join(dataDir, CredentialsFile) }

// LoadOrCreate loads the credentials file of dataDir. When there is none, it
// creates dataDir (mode 0700) if needed and a file (mode 0600) holding one new
// access key, one token and one ingest secret, all for every project, and
// reports created = true.
//
// A file that group or others may read or write is refused (as ssh refuses such
// a private key) instead of being quietly tightened: its secrets may have leaked
// or been replaced, so the operator should look, fix the mode and maybe rotate.
func LoadOrCreate(dataDir string) (f *File, created bool, err error) {
	f, err = load(dataDir)
	if err == nil {
		return f, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}

	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, false, fmt.Errorf("create data directory: %w", err)
	}
	f = &File{}
	for _, rotate := range []func() error{f.RotateAccessKey, f.RotateToken, func() error { return f.RotateIngestSecret(AnyProject) }} {
		if err := rotate(); err != nil {
			return nil, false, err
		}
	}
	switch err := f.write(dataDir, false); {
	case errors.Is(err, fs.ErrExist):
		// Another process created it first: use theirs, so both agree.
		f, err = load(dataDir)
		return f, false, err
	case err != nil:
		return nil, false, err
	}
	return f, true, nil
}

func load(dataDir string) (*File, error) {
	path := Path(dataDir)
	fh, err := os.Open(path)
	if err != nil {
		return nil, err // wraps fs.ErrNotExist when absent
	}
	defer fh.Close()
	info, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("credentials file: %w", err)
	}
	if mode := info.Mode().Perm(); mode&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, livehooks.Errorf(livehooks.EINVALID,
			"%s is accessible by group or others (mode %04o): run `chmod 600 %s`, and rotate its credentials if someone else may have read it",
			path, mode, path)
	}
	var fj fileJSON
	dec := json.NewDecoder(fh)
	if err := dec.Decode(&fj); err != nil {
		// The decoder's message may quote the file's bytes, which are secrets.
		return nil, livehooks.Errorf(livehooks.EINVALID, "%s is not valid JSON (near byte %d)", path, dec.InputOffset())
	}
	f := &File{}
	for i, k := range fj.AccessKeys {
		ak := AccessKey(k)
		if err := ak.validate(); err != nil {
			return nil, livehooks.Errorf(livehooks.EINVALID, "%s: access_keys[%d]: %s", path, i, livehooks.ErrorMessage(err))
		}
		f.AccessKeys = append(f.AccessKeys, ak)
	}
	for i, t := range fj.Tokens {
		tok := Token(t)
		if err := tok.validate(); err != nil {
			return nil, livehooks.Errorf(livehooks.EINVALID, "%s: tokens[%d]: %s", path, i, livehooks.ErrorMessage(err))
		}
		f.Tokens = append(f.Tokens, tok)
	}
	for i, s := range fj.IngestSecrets {
		is := IngestSecret(s)
		if err := is.validate(); err != nil {
			return nil, livehooks.Errorf(livehooks.EINVALID, "%s: ingest_secrets[%d]: %s", path, i, livehooks.ErrorMessage(err))
		}
		f.IngestSecrets = append(f.IngestSecrets, is)
	}
	return f, nil
}

// Save writes f to the credentials file of dataDir atomically (a temporary file
// in the same directory, synced, then renamed over the old one), mode 0600.
func (f *File) Save(dataDir string) error {
	return f.write(dataDir, true)
}

// write stores f; with replace false it fails with fs.ErrExist when the file
// exists (a hard link publishes the complete file without replacing another).
func (f *File) write(dataDir string, replace bool) (err error) {
	fj := fileJSON{
		AccessKeys:    []accessKeyJSON{},
		Tokens:        []tokenJSON{},
		IngestSecrets: []ingestSecretJSON{},
	}
	for _, k := range f.AccessKeys {
		fj.AccessKeys = append(fj.AccessKeys, accessKeyJSON(k))
	}
	for _, t := range f.Tokens {
		fj.Tokens = append(fj.Tokens, tokenJSON(t))
	}
	for _, s := range f.IngestSecrets {
		fj.IngestSecrets = append(fj.IngestSecrets, ingestSecretJSON(s))
	}
	data, err := json.MarshalIndent(fj, "", "  ")
	if err != nil {
		return fmt.Errorf("encode credentials: %w", err)
	}
	data = append(data, '\n')

	tmp, err := os.CreateTemp(dataDir, "."+CredentialsFile+".*.tmp") // mode 0600
	if err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		return fmt.Errorf("save credentials: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	path := Path(dataDir)
	if replace {
		if err := os.Rename(tmp.Name(), path); err != nil {
			return fmt.Errorf("save credentials: %w", err)
		}
	} else {
		switch err := os.Link(tmp.Name(), path); {
		case errors.Is(err, fs.ErrExist):
			return err
		case err != nil:
			// No hard links on this file system (FAT, some FUSE mounts):
			// renaming still publishes a complete file, at the price of a
			// second process racing this one overwriting its file.
			if err := os.Rename(tmp.Name(), path); err != nil {
				return fmt.Errorf("save credentials: %w", err)
			}
		default:
			os.Remove(tmp.Name())
		}
	}
	syncDir(dataDir)
	return nil
}

// syncDir makes a rename durable. Some systems cannot sync a directory; the
// file itself is synced already, so that failure is not an error.
func syncDir(dir string) { _ = durable.SyncDir(dir) }

// RotateAccessKey replaces the access keys of f with a new one, bound to the
// projects of the first key it replaces (every project when there was none).
// Call Save to keep it. It returns an error, as the other rotations do, though
// it has none to report today.
func (f *File) RotateAccessKey() error {
	projects := []string{AnyProject}
	if len(f.AccessKeys) > 0 {
		projects = slices.Clone(f.AccessKeys[0].Projects)
	}
	f.AccessKeys = []AccessKey{{AK: randomString(20, upperAlnum), SK: randomString(40, alnum), Projects: projects}}
	return nil
}

// RotateToken replaces the tokens of f with a new one of 48 URL-safe
// characters, bound to the projects of the first token it replaces (every
// project when there was none). Call Save to keep it.
func (f *File) RotateToken() error {
	projects := []string{AnyProject}
	if len(f.Tokens) > 0 {
		projects = slices.Clone(f.Tokens[0].Projects)
	}
	var b [36]byte
	rand.Read(b[:]) // never fails (Go 1.24+: crashes the program instead)
	f.Tokens = []Token{{Token: base64.RawURLEncoding.EncodeToString(b[:]), Projects: projects}}
	return nil
}

// RotateIngestSecret sets a new ingest secret for project (AnyProject for every
// project), replacing the one it had, or adding it. Call Save to keep it.
func (f *File) RotateIngestSecret(project string) error {
	s := IngestSecret{Project: project, Secret: randomString(32, alnum)}
	if err := s.validate(); err != nil {
		return err
	}
	i := slices.IndexFunc(f.IngestSecrets, func(x IngestSecret) bool { return x.Project == project })
	if i < 0 {
		f.IngestSecrets = append(f.IngestSecrets, s)
	} else {
		f.IngestSecrets[i] = s
	}
	return nil
}

const (
	upperAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	alnum      = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// randomString returns n characters drawn uniformly from alphabet with
// crypto/rand (rejection sampling: no modulo bias).
func randomString(n int, alphabet string) string {
	limit := 256 - 256%len(alphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/2)
	for len(out) < n {
		rand.Read(buf) // never fails (Go 1.24+: crashes the program instead)
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out)
}
