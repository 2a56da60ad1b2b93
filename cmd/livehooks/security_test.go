package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
)

// Black-box tests of the tenant boundary (issue 11): a serve with two
// projects, A and B, each with its own token and ingest secret; B attacks A
// or the service with its own credentials only.

const (
	tokenA, tokenB   = "TokenOfProjectA", "TokenOfProjectB"
	secretA, secretB = "IngestSecretOfA", "IngestSecretOfB"
)

// startTwoProjects runs serve with projects A and B and the given extra
// flags, and returns its base URL.
func startTwoProjects(t *testing.T, extra ...string) (*running, string) {
	t.Helper()
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log-format", "json",
		"--token", tokenA + ":A", "--token", tokenB + ":B", "--ingest-secret", "A:" + secretA, "--ingest-secret", "B:" + secretB,
		"--allow-callback-cidr", "127.0.0.0/8"}, extra...)
	srv := start(t, nil, args...)
	return srv, srv.serveAddr(t)
}

// createConfig creates a callback config in project and returns its id.
func createConfig(t *testing.T, base, project, token, body string) string {
	t.Helper()
	status, resp := request(t, "POST", base+"/v1/"+project+"/record/callbacks", token, body)
	if status != 201 {
		t.Fatalf("create config in %s: %d %s", project, status, resp)
	}
	var c struct{ ID string }
	if err := json.Unmarshal([]byte(resp), &c); err != nil || c.ID == "" {
		t.Fatalf("create config: %s", resp)
	}
	return c.ID
}

// hugeHeaderServer answers every request with a 200 whose headers total
// about size bytes, after release is closed (nil: at once). It counts the
// requests it has read.
type hugeHeaderServer struct {
	ln      net.Listener
	release chan struct{}
	mu      sync.Mutex
	reqs    int
	arrived chan struct{}
}

func newHugeHeaderServer(t *testing.T, size int, release chan struct{}) *hugeHeaderServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hugeHeaderServer{ln: ln, release: release, arrived: make(chan struct{}, 100)}
	t.Cleanup(func() { ln.Close() })
	line := "X-Padding: " + strings.Repeat("a", 1000) + "\r\n"
	head := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + strings.Repeat(line, size/len(line)) + "\r\nok"
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				// The whole request is read before the answer: closing a
				// connection with unread bytes resets it, and the client
				// would see the reset instead of the headers.
				_, _ = io.Copy(io.Discard, req.Body)
				h.mu.Lock()
				h.reqs++
				h.mu.Unlock()
				h.arrived <- struct{}{}
				if h.release != nil {
					<-h.release
				}
				_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
				_, _ = c.Write([]byte(head))
			}()
		}
	}()
	return h
}

func (h *hugeHeaderServer) url() string { return "http://" + h.ln.Addr().String() + "/cb" }

// TestReceiverCannotMakeLivehooksHoldHugeHeaders: a receiver answering
// megabytes of headers gets its answer refused after 32 KiB, and a project
// cannot run more than four test-sends at once (the fifth is a 429 in the
// Huawei format), while another project's test-sends are not held up.
func TestReceiverCannotMakeLivehooksHoldHugeHeaders(t *testing.T) {
	_, base := startTwoProjects(t)

	huge := newHugeHeaderServer(t, 4<<20, nil)
	id := createConfig(t, base, "B", tokenB, `{"publish_domain":"b.example.com","app":"live","notify_callback_url":"`+huge.url()+`"}`)
	status, body := request(t, "POST", base+"/v1/B/record/callbacks/"+id+"/test", tokenB, "")
	var res struct {
		StatusCode int    `json:"status_code"`
		Error      string `json:"error"`
	}
	_ = json.Unmarshal([]byte(body), &res)
	if status != 200 || res.StatusCode != 0 || !strings.Contains(res.Error, "exceeded 32768 bytes") {
		t.Fatalf("test-send to a receiver with 4 MiB of headers: %d %s", status, body)
	}

	release := make(chan struct{})
	slow := newHugeHeaderServer(t, 1<<10, release)
	slowID := createConfig(t, base, "B", tokenB, `{"publish_domain":"b.example.com","app":"slow","notify_callback_url":"`+slow.url()+`"}`)
	var wg sync.WaitGroup
	codes := make([]int, 4)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = request(t, "POST", base+"/v1/B/record/callbacks/"+slowID+"/test", tokenB, "")
		}()
	}
	for range 4 {
		select {
		case <-slow.arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("the four test-sends did not reach the receiver")
		}
	}
	status, body = request(t, "POST", base+"/v1/B/record/callbacks/"+slowID+"/test", tokenB, "")
	var e errorBody
	_ = json.Unmarshal([]byte(body), &e)
	if status != 429 || e.ErrorCode != "APIGW.0308" || e.ErrorMsg == "" {
		t.Fatalf("fifth concurrent test-send: %d %s", status, body)
	}
	// Project A is not held up by B's test-sends.
	fast := newHugeHeaderServer(t, 1<<10, nil)
	aID := createConfig(t, base, "A", tokenA, `{"publish_domain":"a.example.com","app":"live","notify_callback_url":"`+fast.url()+`"}`)
	if status, body := request(t, "POST", base+"/v1/A/record/callbacks/"+aID+"/test", tokenA, ""); status != 200 || !strings.Contains(body, `"status_code":200`) {
		t.Fatalf("project A's test-send while B has four in flight: %d %s", status, body)
	}
	close(release)
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Errorf("test-send %d: %d", i, c)
		}
	}
	// The slots are free again (release is closed: the receiver answers at once).
	if status, body := request(t, "POST", base+"/v1/B/record/callbacks/"+slowID+"/test", tokenB, ""); status != 200 {
		t.Fatalf("test-send after the others finished: %d %s", status, body)
	}
}

type errorBody struct {
	ErrorCode string `json:"error_code"`
	ErrorMsg  string `json:"error_msg"`
}

// TestOnDemandClientRefusesHugeHeaders: the client of on-demand questions
// refuses an answer with megabytes of headers.
func TestOnDemandClientRefusesHugeHeaders(t *testing.T) {
	huge := newHugeHeaderServer(t, 2<<20, nil)
	allow, _ := parseCIDRs([]string{"127.0.0.0/8"})
	resp, err := guardedClient(allow, time.Second).Post(huge.url(), "application/json", strings.NewReader("{}"))
	if err == nil {
		resp.Body.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "exceeded 32768 bytes") {
		t.Fatalf("on-demand question to a receiver with 2 MiB of headers: %v", err)
	}
}

// TestStoreFilesArePrivate: serve in an existing 0755 data directory creates
// livehooks.db, -wal and -shm readable by their owner only.
func TestStoreFilesArePrivate(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	srv := start(t, nil, "serve", "--listen", "127.0.0.1:0", "--data-dir", dir, "--log-format", "json", "--token", tokenA+":A")
	base := srv.serveAddr(t)
	createConfig(t, base, "A", tokenA, `{"publish_domain":"a.example.com","app":"live","notify_callback_url":"http://127.0.0.1:9/cb"}`)
	for _, name := range []string{"livehooks.db", "livehooks.db-wal", "livehooks.db-shm"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
}

// TestRecordingsIsolatedBetweenProjects: project B, with its own credentials
// only, sets object storage for its domain and names project A's recordings
// in its hooks (issue 11): in a plain --record-dir shared by both projects
// (files under DIR/<project_id>/) and in a directory bound to A
// (--record-dir A:DIR). Each is refused with a 403 in the Huawei format and
// a log line, and nothing reaches B's bucket or callback; a text file is no
// segment whatever duration MediaMTX claims; app "..", no stream key; B's
// own recording goes through.
func TestRecordingsIsolatedBetweenProjects(t *testing.T) {
	backend, s3 := fakeS3(t, "bucket-b")
	rcv := newJSONReceiver(t)

	video, err := os.ReadFile("../../media/testdata/video.flv")
	if err != nil {
		t.Fatal(err)
	}
	shared, boundA := t.TempDir(), t.TempDir()
	write := func(path string, b []byte) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	secretOfA := write(filepath.Join(shared, "A", "secret-recording.flv"), video)
	boundOfA := write(filepath.Join(boundA, "secret-recording.flv"), video)
	topLevel := write(filepath.Join(shared, "top-level.flv"), video)
	notes := write(filepath.Join(shared, "B", "notes.txt"), []byte("not a recording\n"))
	ownOfB := write(filepath.Join(shared, "B", "b.flv"), video)

	srv, base := startTwoProjects(t, "--record-dir", shared, "--record-dir", "A:"+boundA)
	if status, body := request(t, "PUT", base+"/v1/B/record/domains/b.example.com", tokenB, `{"storage":{"endpoint":"`+
		strings.TrimPrefix(s3.URL, "http://")+`","secure":false,"region":"us-east-1","bucket":"bucket-b","access_key":"AKB","secret_key":"SecretOfBsBucket0123"}}`); status != 201 {
		t.Fatalf("B sets storage: %d %s", status, body)
	}
	createConfig(t, base, "B", tokenB, `{"publish_domain":"b.example.com","app":"live","notify_callback_url":"`+rcv.URL+`/cb",`+
		`"notify_event_subscription":["RECORD_FILE_COMPLETE","RECORD_FAILED"]}`)

	nginx := func(call, app, path string) (int, string) {
		t.Helper()
		return request(t, "POST", base+"/hooks/nginx-rtmp/B?secret="+secretB, "", "app="+app+"&name=cam1&clientid=1&call="+call+
			"&tcurl=rtmp://b.example.com:1935/"+app+"&path="+url.QueryEscape(path))
	}
	mediamtx := func(segment string) (int, string) {
		t.Helper()
		return request(t, "POST", base+"/hooks/mediamtx/B?secret="+secretB+"&domain=b.example.com", "",
			`{"event":"segment-complete","path":"live/cam1","segment_path":"`+segment+`","segment_duration":"2"}`)
	}
	if status, body := nginx("publish", "live", ""); status != 200 {
		t.Fatalf("publish: %d %s", status, body)
	}
	for _, name := range []string{secretOfA, boundOfA, topLevel} {
		for hook, post := range map[string]func() (int, string){
			"nginx-rtmp record_done": func() (int, string) { return nginx("record_done", "live", name) },
			"MediaMTX segment":       func() (int, string) { return mediamtx(name) },
		} {
			status, body := post()
			var e errorBody
			_ = json.Unmarshal([]byte(body), &e)
			if status != 403 || e.ErrorCode != "APIGW.0302" || !strings.Contains(e.ErrorMsg, "not in a record directory of this project") {
				t.Errorf("%s naming %s: %d %s", hook, name, status, body)
			}
		}
	}
	if status, body := nginx("record_done", "..", ownOfB); status != 400 {
		t.Errorf("record_done with app \"..\": %d %s", status, body)
	}
	if status, body := mediamtx(notes); status != 200 {
		t.Fatalf("MediaMTX segment naming a text file: %d %s", status, body)
	}
	if status, body := nginx("record_done", "live", ownOfB); status != 200 {
		t.Fatalf("B's own recording: %d %s", status, body)
	}

	if got := rcv.wait(t, 2, srv); len(got) != 2 || got[0]["event_type"] != "RECORD_FAILED" || !strings.Contains(fmt.Sprint(got[0]["error_message"]), "notes.txt could not be read") ||
		got[1]["event_type"] != "RECORD_FILE_COMPLETE" || !strings.Contains(fmt.Sprint(got[1]["download_url"]), "/bucket-b/live/cam1/b.flv") {
		t.Errorf("B's callbacks: %v", got)
	}
	list, err := backend.ListBucket("bucket-b", nil, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range list.Contents {
		keys = append(keys, o.Key)
	}
	if len(keys) != 1 || keys[0] != "live/cam1/b.flv" {
		t.Errorf("B's bucket holds %v, want only live/cam1/b.flv", keys)
	}
	if n := strings.Count(srv.stderr.String(), "recording file refused: it belongs to another project"); n != 6 {
		t.Errorf("%d log lines of refused files, want 6:\n%s", n, srv.stderr.String())
	}
}

// TestMissingRecordDirRefused: serve refuses to start with a --record-dir
// that does not exist.
func TestMissingRecordDirRefused(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-dir")
	for _, spec := range []string{missing, "A:" + missing} {
		var out bytes.Buffer
		err := run(context.Background(), []string{"serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--dev", "--record-dir", spec},
			func(string) string { return "" }, nil, &out, &out)
		if err == nil || !strings.Contains(err.Error(), "--record-dir") || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("--record-dir %s: %v", spec, err)
		}
	}
}

// TestMetricsNameNoDestination: /metrics, which needs no credentials, does
// not name project A's callback destination while A's deliveries to it are
// failing; it counts destinations by breaker state instead.
func TestMetricsNameNoDestination(t *testing.T) {
	var mu sync.Mutex
	hits := 0
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer rcv.Close()
	_, base := startTwoProjects(t)
	createConfig(t, base, "A", tokenA, `{"publish_domain":"a.example.com","app":"live","notify_callback_url":"`+rcv.URL+`/secret-hook-of-a","notify_event_subscription":["RECORD_START"]}`)
	if status, body := request(t, "POST", base+"/v1/A/record/events", tokenA,
		`{"event_type":"RECORD_START","publish_domain":"a.example.com","app":"live","stream":"cam1"}`); status != 202 {
		t.Fatalf("ingest: %d %s", status, body)
	}
	host := strings.TrimPrefix(rcv.URL, "http://")
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := hits
		mu.Unlock()
		status, body := request(t, "GET", base+"/metrics", "", "")
		if status != 200 {
			t.Fatalf("/metrics: %d", status)
		}
		if strings.Contains(body, host) || strings.Contains(body, "secret-hook-of-a") || strings.Contains(body, "a.example.com") {
			t.Fatalf("/metrics names A's destination:\n%s", body)
		}
		if n > 0 && strings.Contains(body, `livehooks_destinations{breaker="closed"} 1`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed delivery counted after 10 s (receiver hit %d times):\n%s", n, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
