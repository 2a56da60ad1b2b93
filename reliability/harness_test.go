package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// binary is the livehooks binary built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "livehooks-reliability-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "livehooks")
	cmd := exec.Command("go", "build", "-o", binary, "./cmd/livehooks")
	cmd.Dir = ".." // the repository root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "reliability: go build ./cmd/livehooks:", err)
		return 1
	}
	return m.Run()
}

const (
	project = "rel"
	token   = "reliability-token-0123456789"
	domain  = "rel.example.com"
	key     = "relKey0123456789abcdefghijklmnopqrs"
)

// server is a livehooks serve subprocess. It keeps its port and data
// directory across restarts.
type server struct {
	t       *testing.T
	dataDir string
	addr    string
	args    []string
	cmd     *exec.Cmd
	exited  chan struct{}
	log     *lockedBuffer
	starts  int
	env     []string    // added to livehooks' environment
	up      atomic.Bool // between a start and a kill or stop
}

func newServer(t *testing.T, dataDir string, args ...string) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &server{t: t, dataDir: dataDir, addr: addr, args: args, log: &lockedBuffer{}}
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			t.Logf("livehooks output (last 8 KiB):\n%s", s.log.tail(8<<10))
		}
	})
	return s
}

func (s *server) base() string { return "http://" + s.addr }

// start runs livehooks and waits until it answers /readyz.
func (s *server) start() {
	s.t.Helper()
	args := append([]string{"serve",
		"--listen", s.addr,
		"--data-dir", s.dataDir,
		"--token", token + ":" + project,
		"--allow-callback-cidr", "127.0.0.0/8",
		"--log-level", "warn",
	}, s.args...)
	cmd := exec.Command(binary, args...)
	fmt.Fprintf(s.log, "--- start %d: %s\n", s.starts, strings.Join(args, " "))
	s.starts++
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if len(s.env) > 0 {
		cmd.Env = append(os.Environ(), s.env...)
	}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start livehooks: %v", err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-s.exited:
			s.t.Fatalf("livehooks exited at start:\n%s", s.log.tail(4<<10))
		case <-time.After(20 * time.Millisecond):
		}
		resp, err := http.Get(s.base() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.up.Store(true)
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("livehooks not ready after 30 s:\n%s", s.log.tail(4<<10))
		}
	}
}

// kill kills livehooks with SIGKILL (kill -9) and waits for it to be gone.
func (s *server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.up.Store(false)
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
	s.cmd = nil
}

// stop ends livehooks with SIGTERM (graceful shutdown).
func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	s.up.Store(false)
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.t.Errorf("livehooks did not stop within 30 s of SIGTERM")
		s.kill()
	}
	s.cmd = nil
}

// createConfig creates the config of app, posting to url, and returns its id.
func (s *server) createConfig(app, url string) string {
	s.t.Helper()
	body, _ := json.Marshal(map[string]any{
		"publish_domain": domain, "app": app, "notify_callback_url": url,
		"notify_event_subscription": []string{"RECORD_FILE_COMPLETE"}, "key": key,
	})
	req, _ := http.NewRequest(http.MethodPost, s.base()+"/v1/"+project+"/record/callbacks", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Auth-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("create config: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		s.t.Fatalf("create config: %s: %s", resp.Status, b)
	}
	var c struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &c); err != nil || c.ID == "" {
		s.t.Fatalf("create config: no id in %s", b)
	}
	return c.ID
}

// ingestAnswer is what an ingest request got back.
type ingestAnswer struct {
	status int
	body   []byte
	err    error
}

// ingest posts one event of stream with task id t<seq>.
func ingest(ctx context.Context, client *http.Client, base, app string, stream int, seq int64) ingestAnswer {
	ev := fmt.Sprintf(`{"event_type":"RECORD_FILE_COMPLETE","publish_domain":%q,"app":%q,"stream":"s%d","task_id":"t%d",`+
		`"record_format":"FLV","download_url":"https://cdn.rel.example.com/s%d/t%d.flv","file_size":1048576,"record_duration":60,"width":1280,"height":720}`,
		domain, app, stream, seq, stream, seq)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/"+project+"/record/events", strings.NewReader(ev))
	if err != nil {
		return ingestAnswer{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Auth-Token", token)
	resp, err := client.Do(req)
	if err != nil {
		return ingestAnswer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return ingestAnswer{status: resp.StatusCode, body: b, err: err}
}

// ledger records what the ingest side had acknowledged and what receivers
// got. Events are known by their task id, t<seq>.
type ledger struct {
	mu      sync.Mutex
	acked   map[int64]int    // seq → stream, for events answered 202
	got     map[int64]int    // seq → 2xx receipts
	last    map[int]int64    // stream → highest seq delivered (first receipts)
	order   []string         // order violations, described
	unknown int              // receipts of events this test did not send
	tries   map[string][]try // webhook-id → attempts, in arrival order
	ackedAt map[int64]time.Time
	firstAt map[int64]time.Time // seq → first 2xx receipt
}

type try struct {
	at     time.Time
	status int
}

func newLedger() *ledger {
	return &ledger{acked: map[int64]int{}, got: map[int64]int{}, last: map[int]int64{}, tries: map[string][]try{},
		ackedAt: map[int64]time.Time{}, firstAt: map[int64]time.Time{}}
}

func (l *ledger) ack(seq int64, stream int) {
	l.mu.Lock()
	l.acked[seq] = stream
	l.ackedAt[seq] = time.Now()
	l.mu.Unlock()
}

// slowest returns the longest time from an acknowledgement to the first
// receipt of its event, among the events delivered.
func (l *ledger) slowest() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var worst time.Duration
	for seq, acked := range l.ackedAt {
		if first, ok := l.firstAt[seq]; ok && first.Sub(acked) > worst {
			worst = first.Sub(acked)
		}
	}
	return worst
}

// attempt records an attempt that the receiver answered with status.
func (l *ledger) attempt(webhookID string, status int) {
	l.mu.Lock()
	l.tries[webhookID] = append(l.tries[webhookID], try{time.Now(), status})
	l.mu.Unlock()
}

// delivered records a callback answered 2xx.
func (l *ledger) delivered(body []byte) {
	var m struct {
		TaskID string `json:"task_id"`
		Stream string `json:"stream"`
	}
	_ = json.Unmarshal(body, &m)
	seq, err1 := strconv.ParseInt(strings.TrimPrefix(m.TaskID, "t"), 10, 64)
	stream, err2 := strconv.Atoi(strings.TrimPrefix(m.Stream, "s"))
	l.mu.Lock()
	defer l.mu.Unlock()
	if err1 != nil || err2 != nil || !strings.HasPrefix(m.TaskID, "t") {
		l.unknown++
		return
	}
	l.got[seq]++
	if l.got[seq] > 1 {
		return // a duplicate: order is about first deliveries
	}
	l.firstAt[seq] = time.Now()
	if last, ok := l.last[stream]; ok && seq < last {
		l.order = append(l.order, fmt.Sprintf("stream s%d: t%d delivered after t%d", stream, seq, last))
	}
	if last, ok := l.last[stream]; !ok || seq > last {
		l.last[stream] = seq
	}
}

// missing returns the acknowledged events not delivered yet.
func (l *ledger) missing() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []int64
	for seq := range l.acked {
		if l.got[seq] == 0 {
			out = append(out, seq)
		}
	}
	return out
}

// duplicates counts receipts beyond the first of each event.
func (l *ledger) duplicates() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.got {
		n += c - 1
	}
	return n
}

func (l *ledger) unknownCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.unknown
}

func (l *ledger) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// waitDelivered waits until every acknowledged event was delivered, failing
// the test with the missing ones after timeout.
func (l *ledger) waitDelivered(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		missing := l.missing()
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			if len(missing) > 20 {
				missing = missing[:20]
			}
			t.Fatalf("%d of %d acknowledged events not delivered after %s (LOST), e.g. task ids %v", len(l.missing()), l.ackedCount(), timeout, missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkOrder fails the test for first deliveries out of order in a stream.
func (l *ledger) checkOrder(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.order) > 0 {
		t.Errorf("%d deliveries out of order within their stream, e.g. %s", len(l.order), strings.Join(l.order[:min(5, len(l.order))], "; "))
	}
}

// receiver is a loopback callback endpoint whose behaviour the test sets:
// behave returns true when it answered the request itself (a failure);
// otherwise the receiver answers 200 and records the delivery.
type receiver struct {
	srv    *httptest.Server
	ledger *ledger
	behave atomic.Pointer[func(w http.ResponseWriter, r *http.Request) bool]
}

func newReceiver(t *testing.T, l *ledger) *receiver {
	rc := &receiver{ledger: l}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b := rc.behave.Load(); b != nil && (*b)(w, r) {
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		l.attempt(r.Header.Get("webhook-id"), http.StatusOK)
		l.delivered(body)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) url() string { return rc.srv.URL + "/hook" }

// set installs a behaviour; nil restores plain 200s.
func (rc *receiver) set(b func(w http.ResponseWriter, r *http.Request) bool) {
	if b == nil {
		rc.behave.Store(nil)
		return
	}
	rc.behave.Store(&b)
}

// load is a set of concurrent ingest clients. Each client owns its streams
// and sends their events one after another, so the commit order of a stream
// is its sequence order.
type load struct {
	base    func() string
	app     string
	clients int
	streams int // per client
	ledger  *ledger
	pause   time.Duration // between two events of a client

	next     atomic.Int64
	sent     atomic.Int64
	errs     atomic.Int64
	firstErr atomic.Value // string: the first error, for the log
	statusN  sync.Map     // status code → *atomic.Int64
	onAnswer func(ingestAnswer)
	stop     context.CancelFunc
	done     sync.WaitGroup
}

func (ld *load) start() {
	ctx, cancel := context.WithCancel(context.Background())
	ld.stop = cancel
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: ld.clients}}
	for c := range ld.clients {
		ld.done.Add(1)
		go func() {
			defer ld.done.Done()
			for k := 0; ctx.Err() == nil; k++ {
				stream := c*ld.streams + k%ld.streams
				seq := ld.next.Add(1) - 1
				ans := ingest(ctx, client, ld.base(), ld.app, stream, seq)
				if ctx.Err() != nil {
					return // halted: this answer means nothing
				}
				ld.sent.Add(1)
				if ld.onAnswer != nil {
					ld.onAnswer(ans)
				}
				switch {
				case ans.err != nil:
					if ld.errs.Add(1) == 1 {
						ld.firstErr.Store(ans.err.Error())
					}
					sleep(ctx, 20*time.Millisecond) // livehooks is down: do not spin
				case ans.status == http.StatusAccepted:
					ld.ledger.ack(seq, stream)
				default:
					v, _ := ld.statusN.LoadOrStore(ans.status, new(atomic.Int64))
					v.(*atomic.Int64).Add(1)
					sleep(ctx, 20*time.Millisecond)
				}
				if ld.pause > 0 {
					sleep(ctx, ld.pause)
				}
			}
		}()
	}
}

func (ld *load) halt() {
	ld.stop()
	ld.done.Wait()
}

func (ld *load) statuses() string {
	var parts []string
	ld.statusN.Range(func(k, v any) bool {
		parts = append(parts, fmt.Sprintf("%d×%d", v.(*atomic.Int64).Load(), k))
		return true
	})
	return strings.Join(parts, ", ")
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// lockedBuffer collects a subprocess's output.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}
