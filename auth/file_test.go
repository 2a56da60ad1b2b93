package auth

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/livehooks/livehooks"
)

func TestLoadOrCreate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	f, created, err := LoadOrCreate(dir)
	if err != nil || !created {
		t.Fatalf("LoadOrCreate: created %v, %v", created, err)
	}
	checkGenerated(t, f)
	if runtime.GOOS != "windows" {
		for path, want := range map[string]os.FileMode{dir: 0o700, Path(dir): 0o600} {
			info, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := info.Mode().Perm(); got != want {
				t.Errorf("%s: mode %04o, want %04o", path, got, want)
			}
		}
	}

	g, created, err := LoadOrCreate(dir)
	if err != nil || created {
		t.Fatalf("second LoadOrCreate: created %v, %v", created, err)
	}
	if !reflect.DeepEqual(f, g) {
		t.Errorf("loaded %v, want %v", g, f)
	}

	// The file is JSON a person can read and edit.
	data, err := os.ReadFile(Path(dir))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string][]map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	if raw["access_keys"][0]["access_key"] != f.AccessKeys[0].AK || raw["ingest_secrets"][0]["project"] != "*" {
		t.Errorf("unexpected file layout:\n%s", data)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("data dir holds %d entries, want only %s", len(entries), CredentialsFile)
	}
}

func checkGenerated(t *testing.T, f *File) {
	t.Helper()
	if len(f.AccessKeys) != 1 || len(f.Tokens) != 1 || len(f.IngestSecrets) != 1 {
		t.Fatalf("generated %d keys, %d tokens, %d ingest secrets; want one each", len(f.AccessKeys), len(f.Tokens), len(f.IngestSecrets))
	}
	k, tok, is := f.AccessKeys[0], f.Tokens[0], f.IngestSecrets[0]
	checkChars(t, "AK", k.AK, 20, upperAlnum)
	checkChars(t, "SK", k.SK, 40, alnum)
	checkChars(t, "token", tok.Token, 48, alnum+"-_")
	checkChars(t, "ingest secret", is.Secret, 32, alnum)
	if !reflect.DeepEqual(k.Projects, []string{"*"}) || !reflect.DeepEqual(tok.Projects, []string{"*"}) || is.Project != "*" {
		t.Errorf("generated credentials not bound to *: %v %v %v", k, tok, is)
	}
}

func checkChars(t *testing.T, what, s string, n int, alphabet string) {
	t.Helper()
	if len(s) != n {
		t.Errorf("%s has %d characters, want %d", what, len(s), n)
	}
	for _, c := range s {
		if !strings.ContainsRune(alphabet, c) {
			t.Errorf("%s contains %q", what, c)
		}
	}
}

func TestLoadOrCreateConcurrently(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const n = 8
	files := make([]*File, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	createdCount := 0
	for i := range n {
		wg.Go(func() {
			f, created, err := LoadOrCreate(dir)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			files[i] = f
			if created {
				createdCount++
			}
		})
	}
	wg.Wait()
	if createdCount != 1 {
		t.Errorf("%d callers created the file, want 1", createdCount)
	}
	for _, f := range files[1:] {
		if !reflect.DeepEqual(f, files[0]) {
			t.Errorf("callers disagree on the credentials")
		}
	}
}

func TestRotateAndSave(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f, _, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	old := *f
	old.AccessKeys = append([]AccessKey(nil), f.AccessKeys...)
	old.Tokens = append([]Token(nil), f.Tokens...)
	old.IngestSecrets = append([]IngestSecret(nil), f.IngestSecrets...)
	f.AccessKeys[0].Projects = []string{"projA", "projB"}

	for _, rotate := range []func() error{f.RotateAccessKey, f.RotateToken,
		func() error { return f.RotateIngestSecret("*") },
		func() error { return f.RotateIngestSecret("projA") },
	} {
		if err := rotate(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.RotateIngestSecret("bad project"); livehooks.ErrorCode(err) != livehooks.EINVALID {
		t.Errorf("RotateIngestSecret(bad project): %v, want EINVALID", err)
	}
	k, tok := f.AccessKeys[0], f.Tokens[0]
	if len(f.AccessKeys) != 1 || k.AK == old.AccessKeys[0].AK || k.SK == old.AccessKeys[0].SK || !reflect.DeepEqual(k.Projects, []string{"projA", "projB"}) {
		t.Errorf("rotated key %v (old %v)", k, old.AccessKeys[0])
	}
	if len(f.Tokens) != 1 || tok.Token == old.Tokens[0].Token {
		t.Errorf("token not rotated")
	}
	if len(f.IngestSecrets) != 2 || f.IngestSecrets[0].Secret == old.IngestSecrets[0].Secret || f.IngestSecrets[1].Project != "projA" {
		t.Errorf("ingest secrets %v", f.IngestSecrets)
	}
	if err := f.Save(dir); err != nil {
		t.Fatal(err)
	}
	g, created, err := LoadOrCreate(dir)
	if err != nil || created {
		t.Fatalf("LoadOrCreate after Save: %v %v", created, err)
	}
	if !reflect.DeepEqual(f, g) {
		t.Errorf("reloaded %v, want %v", g, f)
	}
	if info, err := os.Stat(Path(dir)); err == nil && runtime.GOOS != "windows" && info.Mode().Perm() != 0o600 {
		t.Errorf("mode after Save %04o", info.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("Save left %d entries in the data dir", len(entries))
	}
}

func TestLoadRefuses(t *testing.T) {
	t.Parallel()
	const secret = "SUPERSECRETVALUE1234"
	valid := `{"access_keys":[{"access_key":"AK","secret_key":"` + secret + `","projects":["*"]}],"tokens":[],"ingest_secrets":[]}`
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		wantMsg string
	}{
		{name: "group readable", content: valid, mode: 0o640, wantMsg: "chmod 600"},
		{name: "world writable", content: valid, mode: 0o602, wantMsg: "chmod 600"},
		{name: "not JSON", content: `{"access_keys":[{"secret_key":"` + secret + `"` + "\x00", mode: 0o600, wantMsg: "not valid JSON"},
		{name: "wrong type", content: `{"access_keys":{"secret_key":"` + secret + `"}}`, mode: 0o600, wantMsg: "not valid JSON"},
		{name: "key without projects", content: `{"access_keys":[{"access_key":"AK","secret_key":"` + secret + `"}]}`, mode: 0o600, wantMsg: "access_keys[0]"},
		{name: "bad token", content: `{"tokens":[{"token":"` + secret + ` x","projects":["*"]}]}`, mode: 0o600, wantMsg: "tokens[0]"},
		{name: "bad ingest secret", content: `{"ingest_secrets":[{"project":"a b","secret":"` + secret + `"}]}`, mode: 0o600, wantMsg: "ingest_secrets[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if runtime.GOOS == "windows" && tt.mode != 0o600 {
				t.Skip("no POSIX modes")
			}
			dir := t.TempDir()
			if err := os.WriteFile(Path(dir), []byte(tt.content), tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(Path(dir), tt.mode); err != nil { // umask
				t.Fatal(err)
			}
			f, _, err := LoadOrCreate(dir)
			if err == nil {
				t.Fatalf("LoadOrCreate accepted it: %v", f)
			}
			if livehooks.ErrorCode(err) != livehooks.EINVALID || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %v, want EINVALID with %q", err, tt.wantMsg)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q contains the secret", err)
			}
			// Refusing never rewrites the operator's file.
			if data, _ := os.ReadFile(Path(dir)); string(data) != tt.content {
				t.Error("the file was changed")
			}
		})
	}
}

func TestLoadEmptyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(Path(dir), []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	f, created, err := LoadOrCreate(dir)
	if err != nil || created || len(f.AccessKeys)+len(f.Tokens)+len(f.IngestSecrets) != 0 {
		t.Errorf("LoadOrCreate of {}: %v, %v, %v; want an empty file, as the operator left it", f, created, err)
	}
}

func TestRandomString(t *testing.T) {
	t.Parallel()
	// Every character of the alphabet shows up: no position is stuck.
	s := randomString(4000, upperAlnum)
	for _, c := range upperAlnum {
		if !strings.ContainsRune(s, c) {
			t.Errorf("%q never drawn", c)
		}
	}
	if a, b := randomString(40, alnum), randomString(40, alnum); a == b {
		t.Error("two draws are equal")
	}
}
