package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/signature"
)

// syncBuffer collects a command's output while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type running struct {
	cancel context.CancelFunc
	done   chan error
	stdout *syncBuffer
	stderr *syncBuffer
}

// start runs the program in-process with args and the given environment.
func start(t *testing.T, env map[string]string, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1), stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	getenv := func(k string) string { return env[k] }
	go func() { r.done <- run(ctx, args, getenv, strings.NewReader(""), r.stdout, r.stderr) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) error {
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("did not stop within 20 s")
	}
	return nil
}

var listeningRE = regexp.MustCompile(`"msg":"livehooks listening","addr":"([^"]+)"`)

// serveAddr waits for serve's "listening" log line and returns the address.
func (r *running) serveAddr(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := listeningRE.FindStringSubmatch(r.stderr.String()); m != nil {
			return "http://" + m[1]
		}
		select {
		case err := <-r.done:
			t.Fatalf("serve exited: %v\n%s", err, r.stderr.String())
		default:
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("serve did not start:\n%s", r.stderr.String())
	return ""
}

func request(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHelpListsFlagsAndEnv(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"listen", "--help"}, {"creds", "--help"}, {"version"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, func(string) string { return "" }, nil, &out, &out); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if out.Len() == 0 {
			t.Fatalf("%v printed nothing", args)
		}
		if args[0] == "serve" {
			for _, want := range []string{"--listen", "LIVEHOOKS_LISTEN", "--data-dir", "LIVEHOOKS_DATA_DIR", "--access-key", "LIVEHOOKS_ACCESS_KEYS",
				"--token", "LIVEHOOKS_TOKENS", "--allow-callback-cidr", "--record-dir", "--ingest-secret", "--database-url", "--dev",
				"--public-url", "LIVEHOOKS_PUBLIC_URL", "--commit-delay", "LIVEHOOKS_COMMIT_DELAY", "--concurrent-commits", "LIVEHOOKS_CONCURRENT_COMMITS", "--served-recordings-max-bytes", "LIVEHOOKS_SERVED_RECORDINGS_MAX_BYTES"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("serve --help lacks %s", want)
				}
			}
		}
	}
}

func TestBadFlagsFail(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--access-key", "nocolons", "--data-dir", t.TempDir()},
		{"serve", "--allow-callback-cidr", "nonsense", "--dev", "--data-dir", t.TempDir()},
		{"serve", "--log-format", "xml", "--data-dir", t.TempDir()},
		{"serve", "--public-url", "ftp://example.com", "--dev", "--data-dir", t.TempDir()},
		{"serve", "--served-recordings-max-bytes", "lots", "--dev", "--data-dir", t.TempDir()},
		{"serve", "--commit-delay", "-1ms", "--dev", "--data-dir", t.TempDir()},
		{"serve", "--commit-delay", "2s", "--dev", "--data-dir", t.TempDir()},
		{"serve", "--concurrent-commits", "9", "--dev", "--data-dir", t.TempDir()},
		{"serve", "--concurrent-commits", "-1", "--dev", "--data-dir", t.TempDir()},
		{"serve", "--concurrent-commits", "2", "--dev", "--data-dir", t.TempDir()}, // SQLite
		{"listen", "--sign-type", "SHA1"},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), args, func(string) string { return "" }, nil, &out, &out); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

// TestFirstStartAndSecrets: the first start generates credentials (0600) and
// says where; a key given to the API appears in no response, no log line and
// not in plaintext in any file of the data directory.
func TestFirstStartAndSecrets(t *testing.T) {
	dir := t.TempDir()
	srv := start(t, nil, "serve", "--listen", "127.0.0.1:0", "--data-dir", dir, "--log-format", "json", "--log-level", "debug")
	base := srv.serveAddr(t)
	if !strings.Contains(srv.stderr.String(), filepath.Join(dir, "credentials.json")) {
		t.Fatalf("first start did not say where the credentials are:\n%s", srv.stderr.String())
	}
	fi, err := os.Stat(filepath.Join(dir, "credentials.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", err, fi)
	}
	var creds bytes.Buffer
	if err := run(context.Background(), []string{"creds", "--data-dir", dir}, func(string) string { return "" }, nil, &creds, &creds); err != nil {
		t.Fatal(err)
	}
	token := regexp.MustCompile(`(?m)^token\s+(\S+)`).FindStringSubmatch(creds.String())[1]
	if strings.Contains(srv.stderr.String(), token) {
		t.Fatal("the token was logged")
	}

	const key = "S3cretKeyForTestsOnly0123456789abcdefXYZ"
	var bodies []string
	status, body := request(t, "POST", base+"/v1/p1/record/callbacks", token,
		`{"publish_domain":"push.example.com","app":"live","notify_callback_url":"http://127.0.0.1:9/cb","key":"`+key+`"}`)
	if status != 201 {
		t.Fatalf("create: %d %s", status, body)
	}
	bodies = append(bodies, body)
	var c struct{ ID string }
	_ = json.Unmarshal([]byte(body), &c)
	for _, rq := range [][3]string{
		{"GET", "/v1/p1/record/callbacks/" + c.ID, ""},
		{"GET", "/v1/p1/record/callbacks", ""},
		{"PUT", "/v1/p1/record/callbacks/" + c.ID, `{"publish_domain":"push.example.com","app":"live","key":"` + key + `"}`},
		{"PUT", "/v1/p1/record/callbacks/" + c.ID, `{"publish_domain":"push.example.com","app":"live","key":"` + key + `%"}`},
		{"POST", "/v1/p1/record/callbacks", `{"publish_domain":"push.example.com","app":"live","key":"` + key + `"}`},
		{"POST", "/v1/p1/record/callbacks/" + c.ID + "/test", ""},
	} {
		_, b := request(t, rq[0], base+rq[1], token, rq[2])
		bodies = append(bodies, b)
	}
	for _, b := range bodies {
		if strings.Contains(b, key) {
			t.Fatalf("a response contains the key: %s", b)
		}
	}
	if err := srv.stop(t); err != nil {
		t.Fatalf("serve: %v", err)
	}
	if strings.Contains(srv.stderr.String(), key) {
		t.Fatal("the logs contain the key")
	}
	if !strings.Contains(srv.stderr.String(), `"msg":"stopped"`) {
		t.Fatalf("no graceful stop:\n%s", srv.stderr.String())
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(key)) {
			t.Fatalf("%s contains the key in plaintext", e.Name())
		}
	}
}

// TestEnvAndRepeatableFlags: LIVEHOOKS_* variables stand for flags, repeatable
// ones as space-separated lists, and credentials are bound to projects.
func TestEnvAndRepeatableFlags(t *testing.T) {
	env := map[string]string{
		"LIVEHOOKS_DATA_DIR":   t.TempDir(),
		"LIVEHOOKS_LISTEN":     "127.0.0.1:0",
		"LIVEHOOKS_TOKENS":     "tokenA:projA tokenAB:projA,projB tokenAny:*",
		"LIVEHOOKS_LOG_FORMAT": "json",
	}
	srv := start(t, env, "serve")
	base := srv.serveAddr(t)
	for _, tc := range []struct {
		token, project string
		want           int
	}{
		{"tokenA", "projA", 200}, {"tokenA", "projB", 403}, {"tokenAB", "projB", 200},
		{"tokenAny", "whatever", 200}, {"nope", "projA", 401},
	} {
		if status, body := request(t, "GET", base+"/v1/"+tc.project+"/record/callbacks", tc.token, ""); status != tc.want {
			t.Errorf("%s on %s: %d %s", tc.token, tc.project, status, body)
		}
	}
	// A flag on the command line wins over its variable.
	over := start(t, map[string]string{"LIVEHOOKS_TOKENS": "envtoken:p", "LIVEHOOKS_LOG_FORMAT": "json"},
		"serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--token", "flagtoken:p")
	obase := over.serveAddr(t)
	if s1, _ := request(t, "GET", obase+"/v1/p/record/callbacks", "flagtoken", ""); s1 != 200 {
		t.Errorf("flag token: %d", s1)
	}
	if s2, _ := request(t, "GET", obase+"/v1/p/record/callbacks", "envtoken", ""); s2 != 401 {
		t.Errorf("env token despite the flag: %d", s2)
	}
	// Given credentials, no credentials file is generated.
	if _, err := os.Stat(filepath.Join(env["LIVEHOOKS_DATA_DIR"], "credentials.json")); err == nil {
		t.Error("credentials.json generated although credentials were given")
	}
}

func TestDataDirIsLocked(t *testing.T) {
	dir := t.TempDir()
	first := start(t, nil, "serve", "--listen", "127.0.0.1:0", "--data-dir", dir, "--dev", "--log-format", "json")
	first.serveAddr(t)
	var out bytes.Buffer
	err := run(context.Background(), []string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dir, "--dev"}, func(string) string { return "" }, nil, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second serve on the same data dir: %v", err)
	}
}

func TestDevModeWarns(t *testing.T) {
	srv := start(t, nil, "serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--dev", "--log-format", "json")
	base := srv.serveAddr(t)
	if !strings.Contains(srv.stderr.String(), "authentication is DISABLED") {
		t.Fatal("no dev-mode warning")
	}
	if status, _ := request(t, "GET", base+"/v1/any/record/callbacks", "", ""); status != 200 {
		t.Fatalf("dev mode still requires credentials: %d", status)
	}
}

// TestCredsRotateApplies: a rotated token works on the running server within
// seconds and the old one stops working.
func TestCredsRotateApplies(t *testing.T) {
	dir := t.TempDir()
	srv := start(t, nil, "serve", "--listen", "127.0.0.1:0", "--data-dir", dir, "--log-format", "json")
	base := srv.serveAddr(t)
	tokenRE := regexp.MustCompile(`(?m)^token\s+(\S+)`)
	var before, after bytes.Buffer
	_ = run(context.Background(), []string{"creds", "--data-dir", dir}, func(string) string { return "" }, nil, &before, &before)
	old := tokenRE.FindStringSubmatch(before.String())[1]
	// mtime granularity: make sure the rotation changes it.
	time.Sleep(20 * time.Millisecond)
	if err := run(context.Background(), []string{"creds", "rotate", "token", "--data-dir", dir}, func(string) string { return "" }, nil, &after, &after); err != nil {
		t.Fatal(err)
	}
	fresh := tokenRE.FindStringSubmatch(after.String())[1]
	if fresh == old {
		t.Fatal("rotation kept the token")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s1, _ := request(t, "GET", base+"/v1/p/record/callbacks", fresh, "")
		s2, _ := request(t, "GET", base+"/v1/p/record/callbacks", old, "")
		if s1 == 200 && s2 == 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotation not applied: new %d, old %d", s1, s2)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestListenVerifies: listen prints callbacks and verifies them with the
// signature package, and fails the first N as asked.
func TestListenVerifies(t *testing.T) {
	const key = "abcdefghij0123456789ABCDEFGHIJ0123456789"
	l := start(t, nil, "listen", "--port", "0", "--key", key, "--fail-first", "1", "--fail-status", "503", "--retry-after", "7", "--json")
	var url string
	deadline := time.Now().Add(5 * time.Second)
	for url == "" && time.Now().Before(deadline) {
		if m := regexp.MustCompile(`on (http://\S+/)`).FindStringSubmatch(l.stdout.String()); m != nil {
			url = m[1]
		}
		time.Sleep(10 * time.Millisecond)
	}
	if url == "" {
		t.Fatal("listen did not start")
	}
	e := &livehooks.Event{ProjectID: "p", Type: livehooks.RecordOver, PublishDomain: "push.example.com", App: "live", Stream: "cam1", TaskID: "t"}
	expires := time.Now().Add(5 * time.Minute).Unix()
	sig := signature.Sign("HMACSHA256", key, expires, signature.Fields{EventType: "RECORD_OVER", PublishDomain: "push.example.com", App: "live", Stream: "cam1"})
	body := e.Message(&livehooks.Signature{AuthSign: sig, AuthTimestamp: expires})
	post := func(b []byte, tamper bool) int {
		req, _ := http.NewRequest("POST", url, bytes.NewReader(b))
		ts := time.Now().Unix()
		req.Header.Set("webhook-id", "msg_1")
		req.Header.Set("webhook-timestamp", fmt.Sprint(ts))
		ws := signature.WebhookSignature(key, "msg_1", ts, b)
		if tamper {
			ws = signature.WebhookSignature(key+"x", "msg_1", ts, b)
		}
		req.Header.Set("webhook-signature", ws)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if tamper {
			return resp.StatusCode
		}
		if resp.StatusCode == 503 && resp.Header.Get("Retry-After") != "7" {
			t.Fatal("no Retry-After on the failing answer")
		}
		return resp.StatusCode
	}
	if got := post(body, false); got != 503 {
		t.Fatalf("first answer %d, want 503", got)
	}
	if got := post(body, true); got != 200 {
		t.Fatalf("second answer %d", got)
	}
	sc := bufio.NewScanner(strings.NewReader(l.stdout.String()))
	var lines []receivedCallback
	for sc.Scan() {
		var rc receivedCallback
		if json.Unmarshal(sc.Bytes(), &rc) == nil && rc.N > 0 {
			lines = append(lines, rc)
		}
	}
	if len(lines) != 2 || lines[0].AuthSign != "valid (HMACSHA256)" || lines[0].WebhookSig != "valid (v1)" ||
		!strings.HasPrefix(lines[1].WebhookSig, "INVALID") || lines[0].Status != 503 || lines[0].EventType != "RECORD_OVER" {
		t.Fatalf("listen output:\n%s", l.stdout.String())
	}
}

// With --concurrent-commits 0, a database within half a millisecond gets one
// group commit at a time, a farther one four.
func TestAutoConcurrentCommits(t *testing.T) {
	for rtt, want := range map[time.Duration]int{
		50 * time.Microsecond: 1, 499 * time.Microsecond: 1, 500 * time.Microsecond: 4, 2 * time.Millisecond: 4, time.Second: 4,
	} {
		if got := autoConcurrentCommits(rtt); got != want {
			t.Errorf("autoConcurrentCommits(%v) = %d, want %d", rtt, got, want)
		}
	}
}
