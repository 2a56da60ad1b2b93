package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livehooks/livehooks/signature"
)

const backupTestKey = "BackupKey0123456789abcdefghijABCDEFGHIJ"

// arrival is one callback a recordingReceiver answered with 200.
type arrival struct {
	webhookID, domain, stream, asset string
	phase                            int32
}

// recordingReceiver answers 503 while down and 200 otherwise, and records
// what it accepted, in order, with the phase the test was in.
type recordingReceiver struct {
	t     *testing.T
	down  atomic.Bool
	phase *atomic.Int32
	mu    sync.Mutex
	got   []arrival
	srv   *httptest.Server
}

func newRecordingReceiver(t *testing.T, phase *atomic.Int32) *recordingReceiver {
	r := &recordingReceiver{t: t, phase: phase}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.down.Load() {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(503)
			return
		}
		b, _ := io.ReadAll(req.Body)
		if err := signature.VerifyBody("HMACSHA256", backupTestKey, b, time.Now()); err != nil {
			t.Errorf("callback signature: %v", err)
		}
		var m struct {
			PublishDomain string `json:"publish_domain"`
			Stream        string `json:"stream"`
			AssetID       string `json:"asset_id"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("callback body %s: %v", b, err)
		}
		r.mu.Lock()
		r.got = append(r.got, arrival{req.Header.Get("webhook-id"), m.PublishDomain, m.Stream, m.AssetID, r.phase.Load()})
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recordingReceiver) arrivals() []arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]arrival(nil), r.got...)
}

// createConfigs creates, in project p, the config of push1.example.com
// (delivering to up) and of push2.example.com (to down), both signed.
func createConfigs(t *testing.T, base string, up, down *recordingReceiver) {
	t.Helper()
	for domain, rcv := range map[string]*recordingReceiver{"push1.example.com": up, "push2.example.com": down} {
		if status, body := request(t, "POST", base+"/v1/p/record/callbacks", "T", fmt.Sprintf(
			`{"publish_domain":%q,"app":"live","notify_callback_url":"%s/cb","key":%q}`, domain, rcv.srv.URL, backupTestKey)); status != 201 {
			t.Fatalf("create: %d %s", status, body)
		}
	}
}

// storeDeliveries reads the webhook ids of a store file's deliveries by
// status.
func storeDeliveries(t *testing.T, path string) (pending, succeeded map[string]bool, assets map[string]bool) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pending, succeeded, assets = map[string]bool{}, map[string]bool{}, map[string]bool{}
	rows, err := db.Query(`SELECT webhook_id, status FROM deliveries`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, status string
		if err := rows.Scan(&id, &status); err != nil {
			t.Fatal(err)
		}
		switch status {
		case "pending":
			pending[id] = true
		case "succeeded":
			succeeded[id] = true
		}
	}
	rows.Close()
	rows, err = db.Query(`SELECT asset_id FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			t.Fatal(err)
		}
		assets[a] = true
	}
	return pending, succeeded, assets
}

// ingestLoad posts, for each of streams s0…s3 in its own goroutine, events
// numbered 1, 2, … to two domains in one request until stop is closed, and
// records every acknowledged asset id ("<domain>/<stream>-<n>") and each
// stream's task id.
type ingestLoad struct {
	mu    sync.Mutex
	acked map[string]bool
	tasks map[string]string
	stop  chan struct{}
	wg    sync.WaitGroup
}

func startIngest(t *testing.T, base string) *ingestLoad {
	l := &ingestLoad{acked: map[string]bool{}, tasks: map[string]string{}, stop: make(chan struct{})}
	for s := range 4 {
		stream := fmt.Sprintf("s%d", s)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for n := 1; ; n++ {
				select {
				case <-l.stop:
					return
				default:
				}
				var evs []string
				for _, d := range []string{"push1.example.com", "push2.example.com"} {
					evs = append(evs, fmt.Sprintf(`{"event_type":"RECORD_FILE_COMPLETE","publish_domain":%q,"app":"live","stream":%q,"asset_id":"%s-%d"}`, d, stream, stream, n))
				}
				req, _ := http.NewRequest("POST", base+"/v1/p/record/events", strings.NewReader("["+strings.Join(evs, ",")+"]"))
				req.Header.Set("X-Auth-Token", "T")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Errorf("ingest: %v", err)
					return
				}
				var out struct {
					Events []struct {
						TaskID string `json:"task_id"`
					} `json:"events"`
				}
				_ = json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				if resp.StatusCode != 202 {
					t.Errorf("ingest: %d", resp.StatusCode)
					return
				}
				l.mu.Lock()
				l.acked[fmt.Sprintf("%s-%d", stream, n)] = true
				l.tasks[stream] = out.Events[0].TaskID
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *ingestLoad) snapshot() map[string]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]bool, len(l.acked))
	for k := range l.acked {
		out[k] = true
	}
	return out
}

func (l *ingestLoad) halt() { close(l.stop); l.wg.Wait() }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkContinuation checks what a serve at base started from a copy of a
// store delivered in phase 2: exactly the deliveries pending in the copy,
// each once, none that the copy had as succeeded, and in ingest order per
// (domain, stream). The recording state came along too: the next file of
// stream s0 belongs to the task it had (s0Task).
func checkContinuation(t *testing.T, base string, rcvs []*recordingReceiver, pending, succeeded map[string]bool, s0Task string) {
	t.Helper()
	waitFor(t, 60*time.Second, "the deliveries pending in the copy", func() bool {
		n := 0
		for _, r := range rcvs {
			for _, a := range r.arrivals() {
				if a.phase == 2 {
					n++
				}
			}
		}
		return n >= len(pending)
	})
	seen := map[string]bool{}
	last := map[string]int{}
	for _, r := range rcvs {
		for _, a := range r.arrivals() {
			if a.phase != 2 {
				continue
			}
			if seen[a.webhookID] {
				t.Errorf("%s delivered twice after the restore", a.webhookID)
			}
			seen[a.webhookID] = true
			if succeeded[a.webhookID] {
				t.Errorf("%s was delivered before the copy was taken and again after the restore", a.webhookID)
			}
			if !pending[a.webhookID] {
				t.Errorf("%s delivered after the restore was not pending in the copy", a.webhookID)
			}
			n, _ := strconv.Atoi(a.asset[strings.LastIndex(a.asset, "-")+1:])
			lane := a.domain + "/" + a.stream
			if n <= last[lane] {
				t.Errorf("lane %s: %s after %d: out of order", lane, a.asset, last[lane])
			}
			last[lane] = n
		}
	}
	for id := range pending {
		if !seen[id] {
			t.Errorf("pending delivery %s never arrived from the copy", id)
		}
	}
	status, body := request(t, "POST", base+"/v1/p/record/events", "T",
		`{"event_type":"RECORD_FILE_COMPLETE","publish_domain":"push1.example.com","app":"live","stream":"s0","asset_id":"s0-999999"}`)
	if status != 202 || !strings.Contains(body, s0Task) {
		t.Fatalf("s0's next file: %d %s, want task %s", status, body, s0Task)
	}
}

// TestBackupUnderLoadAndRestore: a backup taken while events are ingested and
// delivered holds every event acknowledged before it started; restored into
// a new data directory, livehooks delivers what was pending in the copy,
// once each, in order, and nothing that the copy had as delivered; the
// streams' recording tasks carry on.
func TestBackupUnderLoadAndRestore(t *testing.T) {
	var phase atomic.Int32
	phase.Store(1)
	up := newRecordingReceiver(t, &phase)
	down := newRecordingReceiver(t, &phase)
	down.down.Store(true)

	dirA, dirB := t.TempDir(), t.TempDir()
	file := filepath.Join(t.TempDir(), "backup.db")
	serveArgs := func(dir string) []string {
		return []string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dir, "--token", "T:p",
			"--allow-callback-cidr", "127.0.0.0/8", "--log-format", "json", "--poll-interval", "100ms"}
	}
	a := start(t, nil, serveArgs(dirA)...)
	baseA := a.serveAddr(t)
	createConfigs(t, baseA, up, down)

	load := startIngest(t, baseA)
	waitFor(t, 20*time.Second, "ingest under way", func() bool { return len(load.snapshot()) >= 80 && len(up.arrivals()) >= 40 })
	before := load.snapshot()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"backup", file, "--data-dir", dirA}, func(string) string { return "" }, nil, &out, &out); err != nil {
		t.Fatalf("backup: %v\n%s", err, out.String())
	}
	t.Logf("%s", out.String())
	waitFor(t, 20*time.Second, "ingest after the backup", func() bool { return len(load.snapshot()) >= len(before)+40 })
	load.halt()
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", err, fi)
	}
	if fi, err := os.Stat(file + ".master.key"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("master key beside the backup: %v %v", err, fi)
	}

	// Misuse while A runs: an existing target, a restore into the data
	// directory in use.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"backup", file, "--data-dir", dirA}, "exists"},
		{[]string{"restore", file, "--data-dir", dirA}, "in use"},
		{[]string{"backup", file + "2", "--data-dir", t.TempDir()}, "no store to back up"},
	} {
		out.Reset()
		if err := run(context.Background(), tc.args, func(string) string { return "" }, nil, &out, &out); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
	tasks := load.tasks
	if err := a.stop(t); err != nil {
		t.Fatalf("serve A: %v", err)
	}

	pending, succeeded, assets := storeDeliveries(t, file)
	for asset := range before {
		if !assets[asset] {
			t.Errorf("event %s acknowledged before the backup started is not in it", asset)
		}
	}
	if len(pending) == 0 || len(succeeded) == 0 {
		t.Fatalf("the copy holds %d pending and %d succeeded deliveries: the test needs both", len(pending), len(succeeded))
	}

	// Another master key does not open the copy's callback keys: refused
	// before anything is written.
	wrongKey := map[string]string{"LIVEHOOKS_MASTER_KEY": strings.Repeat("ab", 32)}
	dirX := t.TempDir()
	if err := run(context.Background(), []string{"restore", file, "--data-dir", dirX}, func(k string) string { return wrongKey[k] }, nil, &out, &out); err == nil || !strings.Contains(err.Error(), "does not decrypt") {
		t.Fatalf("restore with another master key: %v", err)
	}
	if entries, _ := os.ReadDir(dirX); len(entries) > 1 { // the lock file
		t.Fatalf("a refused restore left files: %v", entries)
	}
	out.Reset()
	if err := run(context.Background(), []string{"restore", file, "--data-dir", dirB}, func(string) string { return "" }, nil, &out, &out); err != nil {
		t.Fatalf("restore: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"restore", file, "--data-dir", dirB}, func(string) string { return "" }, nil, &out, &out); err == nil || !strings.Contains(err.Error(), "already holds a store") {
		t.Fatalf("a second restore into the same directory: %v", err)
	}

	for _, name := range []string{"master.key", "download.key"} {
		a, _ := os.ReadFile(filepath.Join(dirA, name))
		b, err := os.ReadFile(filepath.Join(dirB, name))
		if err != nil || len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s was not restored with the store: %v", name, err)
		}
	}

	phase.Store(2)
	down.down.Store(false)
	baseB := start(t, nil, serveArgs(dirB)...).serveAddr(t)
	checkContinuation(t, baseB, []*recordingReceiver{up, down}, pending, succeeded, tasks["s0"])
}
