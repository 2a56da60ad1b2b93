package huaweisdk

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/config"
	live "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/live/v1"
)

// livehooksBin is the binary under test: built by TestMain from the repository
// root, or taken from $LIVEHOOKS_BIN when set (CI may build it once).
var livehooksBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if bin := os.Getenv("LIVEHOOKS_BIN"); bin != "" {
		livehooksBin = bin
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "livehooks-compat-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	livehooksBin = filepath.Join(dir, "livehooks")
	build := exec.Command("go", "build", "-o", livehooksBin, "github.com/livehooks/livehooks/cmd/livehooks")
	build.Dir = filepath.Join("..", "..")
	build.Env = append(os.Environ(), "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build livehooks: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// Credentials the server is started with.
const (
	ak1, sk1 = "COMPATAK000000000001", "compatSecretKey0123456789abcdefghijABCDE" // bound to projA
	ak2, sk2 = "COMPATAK000000000002", "compatSecretKey2123456789abcdefghijABCDE" // bound to projB
)

// server is a running `livehooks serve`.
type server struct {
	URL    string
	stderr *syncBuffer
}

// startServer starts livehooks on a free port with a fresh data directory and
// waits until /readyz answers 200. The process is killed when the test ends;
// its log is shown if the test failed.
func startServer(t *testing.T) *server {
	t.Helper()
	addr := freeAddr(t)
	stderr := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, livehooksBin, "serve",
		"--listen", addr,
		"--data-dir", filepath.Join(t.TempDir(), "data"),
		"--access-key", ak1+":"+sk1+":projA",
		"--access-key", ak2+":"+sk2+":projB",
		"--allow-callback-cidr", "127.0.0.0/8",
	)
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = stderr, stderr
	// Stop it as an operator would (SIGINT); kill it if it takes over 5 s.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start livehooks: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel() // stops the process
		<-exited
		if t.Failed() {
			t.Logf("livehooks log:\n%s", stderr.String())
		}
	})

	s := &server{URL: "http://" + addr, stderr: stderr}
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("livehooks exited before it was ready: %v\n%s", err, stderr.String())
		default:
		}
		resp, err := client.Get(s.URL + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("livehooks not ready after 30s (last: %v)\n%s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cleanEnv is the environment without LIVEHOOKS_* variables, so that the
// developer's settings cannot change the server under test.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LIVEHOOKS_") {
			env = append(env, kv)
		}
	}
	return env
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// client returns an official SDK client for the server, signing with ak/sk for
// project, and the recorder of every response body it receives.
func (s *server) client(t *testing.T, ak, sk, project string) (*live.LiveClient, *recorder) {
	t.Helper()
	rec := &recorder{next: &http.Transport{}}
	cred, err := basic.NewCredentialsBuilder().WithAk(ak).WithSk(sk).WithProjectId(project).SafeBuild()
	if err != nil {
		t.Fatal(err)
	}
	hc, err := live.LiveClientBuilder().
		WithEndpoints([]string{s.URL}).
		WithCredential(cred).
		WithHttpConfig(config.DefaultHttpConfig().WithHttpRoundTripper(rec).WithTimeout(10 * time.Second)).
		SafeBuild()
	if err != nil {
		t.Fatal(err)
	}
	return live.NewLiveClient(hc), rec
}

// recorder is an http.RoundTripper that keeps a copy of every response body,
// so tests can check what the SDK does not show (such as a leaked key).
type recorder struct {
	next   http.RoundTripper
	mu     sync.Mutex
	bodies []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	r.mu.Lock()
	r.bodies = append(r.bodies, string(body))
	r.mu.Unlock()
	return resp, nil
}

// all returns every response body received so far, joined.
func (r *recorder) all() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.bodies, "\n")
}
