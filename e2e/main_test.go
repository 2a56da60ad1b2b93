package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livehooks/livehooks/signature"
)

var (
	buildDir   string
	buildOnce  sync.Once
	binaryPath string
	buildErr   error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "livehooks-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// livehooksBinary builds ./cmd/livehooks once (on the first test that gets
// past its skip), so that a local run without nginx or ffmpeg stays fast.
func livehooksBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binaryPath = filepath.Join(buildDir, "livehooks")
		out, err := exec.Command("go", "build", "-o", binaryPath, "../cmd/livehooks").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/livehooks: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binaryPath
}

// requirePrograms skips the test when a program it drives is missing, unless
// CI is set: there (.ci/run installs them) a missing program is a failure.
func requirePrograms(t *testing.T, programs []string, files map[string]string) {
	t.Helper()
	var missing []string
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			if _, err := os.Stat("/usr/sbin/" + p); err != nil {
				missing = append(missing, p)
			}
		}
	}
	for file, pkg := range files {
		if _, err := os.Stat(file); err != nil {
			missing = append(missing, pkg+" ("+file+")")
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("%s not installed (apt-get install nginx libnginx-mod-rtmp ffmpeg)", strings.Join(missing, ", "))
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set and %s", msg)
	}
	t.Skipf("skipping the end-to-end test: %s; with CI=true this fails instead", msg)
}

func lookPath(p string) string {
	if path, err := exec.LookPath(p); err == nil {
		return path
	}
	return "/usr/sbin/" + p
}

// syncBuffer collects a process's output while it runs.
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

// stopProcess ends a process started by a test: SIGTERM, then SIGKILL after
// a while.
func stopProcess(cmd *exec.Cmd, done <-chan error) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

type livehooks struct {
	base   string
	stderr *syncBuffer
}

var listeningRE = regexp.MustCompile(`"msg":"livehooks listening","addr":"([^"]+)"`)

// startLivehooks runs "livehooks serve" as a subprocess and waits until it
// listens.
func startLivehooks(t *testing.T, args ...string) *livehooks {
	t.Helper()
	return startLivehooksOn(t, "127.0.0.1:0", args...)
}

func startLivehooksOn(t *testing.T, listen string, args ...string) *livehooks {
	t.Helper()
	stderr := &syncBuffer{}
	cmd := exec.Command(livehooksBinary(t), append([]string{"serve", "--listen", listen, "--data-dir", t.TempDir(),
		"--log-format", "json", "--sqlite-synchronous", "NORMAL"}, args...)...)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		stopProcess(cmd, done)
		if t.Failed() {
			t.Logf("livehooks log:\n%s", stderr.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := listeningRE.FindStringSubmatch(stderr.String()); m != nil {
			return &livehooks{base: "http://" + m[1], stderr: stderr}
		}
		select {
		case err := <-done:
			t.Fatalf("livehooks exited: %v\n%s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("livehooks did not start:\n%s", stderr.String())
	return nil
}

// api calls the management API with a token and fails the test unless the
// answer has the wanted status.
func (l *livehooks) api(t *testing.T, method, path, token string, body any, want int) []byte {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, l.base+path, bytes.NewReader(b))
	req.Header.Set("X-Auth-Token", token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, out)
	}
	return out
}

// callback is one request the receiver got.
type callback struct {
	at     time.Time
	header http.Header
	body   []byte
	msg    map[string]any
}

func (c callback) str(k string) string {
	s, _ := c.msg[k].(string)
	return s
}

func (c callback) num(k string) int64 {
	f, _ := c.msg[k].(float64)
	return int64(f)
}

// receiver is a callback receiver that keeps what it gets.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []callback
	// onDemand answers on-demand questions, by stream.
	onDemand func(stream string) string
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		if req.URL.Path == "/ondemand" {
			ans := `{"record": false}`
			if r.onDemand != nil {
				ans = r.onDemand(fmt.Sprint(m["stream"]))
			}
			_, _ = io.WriteString(w, ans)
			return
		}
		r.mu.Lock()
		r.got = append(r.got, callback{at: time.Now(), header: req.Header.Clone(), body: body, msg: m})
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) callbacks() []callback {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]callback(nil), r.got...)
}

// waitFor waits until cond holds on the callbacks so far.
func (r *receiver) waitFor(t *testing.T, within time.Duration, what string, cond func([]callback) bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		cbs := r.callbacks()
		if cond(cbs) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s; callbacks so far:\n%s", what, within, render(cbs))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func count(cbs []callback, typ string) int {
	n := 0
	for _, c := range cbs {
		if c.str("event_type") == typ {
			n++
		}
	}
	return n
}

func render(cbs []callback) string {
	var b strings.Builder
	for _, c := range cbs {
		fmt.Fprintf(&b, "  %s task=%s job=%s size=%d dur=%d %dx%d url=%s err=%q\n", c.str("event_type"), c.str("task_id"), c.str("job_id"),
			c.num("file_size"), c.num("record_duration"), c.num("width"), c.num("height"), c.str("download_url"), c.str("error_message"))
	}
	return b.String()
}

// verifySignatures checks both signatures of every callback and that their
// webhook-ids are distinct.
func verifySignatures(t *testing.T, key string, cbs []callback) {
	t.Helper()
	ids := map[string]bool{}
	for _, c := range cbs {
		if err := signature.VerifyBody(signature.HMACSHA256, key, c.body, c.at); err != nil {
			t.Errorf("auth_sign of %s: %v", c.body, err)
		}
		if err := signature.VerifyWebhook(key, c.header, c.body, c.at, time.Minute); err != nil {
			t.Errorf("webhook-signature of %s: %v", c.body, err)
		}
		id := c.header.Get("webhook-id")
		if ids[id] {
			t.Errorf("webhook-id %s twice", id)
		}
		ids[id] = true
	}
}

// freePort returns a TCP port that was free a moment ago, for a program
// that binds it later (nginx, a livehooks whose port nginx must know first).
// It is drawn below the kernel's ephemeral range: the ports of ":0"
// listeners and of outgoing connections come from that range, and with the
// other test packages running beside this one such a port was once taken
// before nginx could bind it.
func freePort(t *testing.T) int {
	t.Helper()
	low := 32768 // Linux's default start of ip_local_port_range
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	const from = 10000
	if low > from+1000 {
		for range 100 {
			port := from + rand.IntN(low-from)
			if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
				ln.Close()
				return port
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitPort waits until something accepts connections on addr.
func waitPort(t *testing.T, addr string, done <-chan error, log func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		select {
		case err := <-done:
			t.Fatalf("exited: %v\n%s", err, log())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("nothing listens on %s:\n%s", addr, log())
}

// ffprobe returns a file's duration and its video's size.
func ffprobe(t *testing.T, path string) (dur float64, width, height int) {
	t.Helper()
	out, err := exec.Command(lookPath("ffprobe"), "-v", "error", "-show_entries", "format=duration:stream=width,height", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var p struct {
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
		Streams []struct {
			Width  int `json:"width"`
			Height int `json:"height"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	fmt.Sscan(p.Format.Duration, &dur)
	for _, s := range p.Streams {
		if s.Width > 0 {
			width, height = s.Width, s.Height
		}
	}
	return dur, width, height
}

// publish streams a 1280x720 test pattern (25 fps, a keyframe every 2 s) to
// url for d with ffmpeg, and waits for it to end.
func publish(ctx context.Context, t *testing.T, url string, d time.Duration) {
	t.Helper()
	if err := ffmpegPublish(ctx, url, d, 50); err != nil {
		t.Fatal(err)
	}
}

// ffmpegPublish streams the test pattern with a keyframe every gop frames.
func ffmpegPublish(ctx context.Context, url string, d time.Duration, gop int) error {
	cmd := exec.CommandContext(ctx, lookPath("ffmpeg"), "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
		"-f", "lavfi", "-i", "testsrc=size=1280x720:rate=25", "-t", fmt.Sprintf("%.3f", d.Seconds()),
		"-g", fmt.Sprint(gop), "-sc_threshold", "0", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-f", "flv", url)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ffmpeg %s: %v\n%s", url, err, out)
	}
	return nil
}

// newFiles returns the files of dir that are not in seen (and adds them).
func newFiles(t *testing.T, dir string, seen map[string]bool) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if !seen[e.Name()] {
			seen[e.Name()] = true
			out = append(out, e.Name())
		}
	}
	return out // ReadDir sorts by name: cam1-<unix seconds>.flv, in time order
}
