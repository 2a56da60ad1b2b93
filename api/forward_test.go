package api_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/api"
	"github.com/livehooks/livehooks/auth"
	"github.com/livehooks/livehooks/delivery"
	"github.com/livehooks/livehooks/groupcommit"
)

// countingIngester stands for the recording machine: it counts the events
// ingested on this node.
type countingIngester struct{ n atomic.Int64 }

func (c *countingIngester) Ingest(_ context.Context, events []*livehooks.Event) error {
	for _, e := range events {
		e.ID = "local"
	}
	c.n.Add(int64(len(events)))
	return nil
}

// fixedRouter sends every ingest to node at url, and remembers what it was
// asked.
type fixedRouter struct {
	node, url string
	mu        sync.Mutex
	asked     [][]*livehooks.Event
}

func (f *fixedRouter) IngestHome(self string, events []*livehooks.Event) (string, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, events)
	return f.node, f.url
}

// TestIngestForwardedToItsHome checks the forwarding of an ingest to the node
// its router names: the request reaches that node as the client sent it
// (path, body, credentials, Host) and marked as forwarded, and its answer
// goes back to the client; a request already forwarded, or whose home cannot
// be reached, is ingested here; a home that fails after the request may have
// reached it is answered 503, not ingested twice. A home behind a TLS
// handshake that fails counts as unreachable: nothing of the request left.
func TestIngestForwardedToItsHome(t *testing.T) {
	t.Parallel()
	type seen struct {
		method, uri, host, token, by, body string
	}
	var (
		mu   sync.Mutex
		got  []seen
		mode atomic.Value // "answer" or "drop"
	)
	mode.Store("answer")
	home := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Method, r.RequestURI, r.Host, r.Header.Get("X-Auth-Token"), r.Header.Get(api.HeaderForwardedBy), string(b)})
		mu.Unlock()
		if mode.Load() == "drop" {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"events":[{"event_id":"at-home"}]}`)
	}))
	t.Cleanup(home.Close)

	router := &fixedRouter{node: "node-b", url: home.URL}
	ing := &countingIngester{}
	var outcomes sync.Map
	db := openStore(t)
	sender := delivery.NewSender(delivery.SenderOptions{})
	t.Cleanup(sender.Close)
	srv, err := api.NewServer(api.Config{
		Callbacks: db, Logger: slog.New(slog.DiscardHandler),
		Auth:     auth.NewVerifier(nil, []auth.Token{{Token: tokenA, Projects: []string{"proja"}}}, nil),
		Ingester: ing, Outbox: db, Requeuer: groupcommit.New(db, groupcommit.Options{Node: "node-a"}), Sender: sender,
		Forwarding: &api.Forwarding{Router: router, Node: "node-a", Count: func(o string) { v, _ := outcomes.LoadOrStore(o, new(atomic.Int64)); v.(*atomic.Int64).Add(1) }},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: httptest.NewServer(srv)}
	t.Cleanup(ts.Close)
	count := func(o string) int64 {
		v, ok := outcomes.Load(o)
		if !ok {
			return 0
		}
		return v.(*atomic.Int64).Load()
	}
	body := `{"event_type":"RECORD_START","publish_domain":"push.example.com","app":"live","stream":"cam1"}`

	// Forwarded: the home's answer, the request as sent.
	r := ts.do(t, "POST", eventsPath+"?x=1", tokenA, body)
	if r.status != http.StatusAccepted || !strings.Contains(string(r.body), "at-home") {
		t.Fatalf("forwarded ingest: %d %s", r.status, r.body)
	}
	mu.Lock()
	if len(got) != 1 {
		t.Fatalf("home got %d requests", len(got))
	}
	want := seen{"POST", eventsPath + "?x=1", strings.TrimPrefix(ts.URL, "http://"), tokenA, "node-a", body}
	if got[0] != want {
		t.Errorf("home got %+v\nwant %+v", got[0], want)
	}
	mu.Unlock()
	if ing.n.Load() != 0 || count("forwarded") != 1 {
		t.Fatalf("ingested here %d, forwarded %d", ing.n.Load(), count("forwarded"))
	}
	if len(router.asked) != 1 || len(router.asked[0]) != 1 || router.asked[0][0].Stream != "cam1" || router.asked[0][0].ProjectID != "proja" {
		t.Fatalf("router asked %v", router.asked)
	}

	// A forwarded request is ingested where it arrives.
	req, _ := http.NewRequest("POST", ts.URL+eventsPath, strings.NewReader(body))
	req.Header.Set("X-Auth-Token", tokenA)
	req.Header.Set(api.HeaderForwardedBy, "node-c")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || !strings.Contains(string(b), `"local"`) || ing.n.Load() != 1 {
		t.Fatalf("already forwarded: %d %s, ingested here %d", resp.StatusCode, b, ing.n.Load())
	}

	// Unauthenticated requests are refused here, not forwarded.
	if r := ts.do(t, "POST", eventsPath, "wrong-token-0123456789abcdef", body); r.status != http.StatusUnauthorized || count("forwarded") != 1 {
		t.Fatalf("bad token: %d, forwarded %d", r.status, count("forwarded"))
	}

	// The home drops the connection after the request reached it: 503, in
	// the Huawei error format, and nothing ingested here.
	mode.Store("drop")
	if r := ts.do(t, "POST", eventsPath, tokenA, body); r.status != http.StatusServiceUnavailable || r.json(t)["error_code"] == nil || ing.n.Load() != 1 {
		t.Fatalf("home failing: %d %s, ingested here %d", r.status, r.body, ing.n.Load())
	}
	if count("failed") != 1 {
		t.Fatalf("failed %d", count("failed"))
	}

	// The home cannot be reached: ingested here.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	router.mu.Lock()
	router.url = "http://" + l.Addr().String()
	router.mu.Unlock()
	l.Close()
	if r := ts.do(t, "POST", eventsPath, tokenA, body); r.status != http.StatusAccepted || !strings.Contains(string(r.body), `"local"`) || ing.n.Load() != 2 {
		t.Fatalf("home unreachable: %d %s, ingested here %d", r.status, r.body, ing.n.Load())
	}
	if count("unreachable") != 1 {
		t.Fatalf("unreachable %d", count("unreachable"))
	}

	// A home whose certificate this node does not trust: the handshake
	// fails before anything of the request leaves, so it is ingested here.
	untrusted := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the request reached a home whose certificate failed")
	}))
	t.Cleanup(untrusted.Close)
	router.mu.Lock()
	router.url = untrusted.URL
	router.mu.Unlock()
	if r := ts.do(t, "POST", eventsPath, tokenA, body); r.status != http.StatusAccepted || !strings.Contains(string(r.body), `"local"`) || ing.n.Load() != 3 {
		t.Fatalf("home with an untrusted certificate: %d %s, ingested here %d", r.status, r.body, ing.n.Load())
	}
	if count("unreachable") != 2 {
		t.Fatalf("unreachable %d", count("unreachable"))
	}

	// No other home: ingested here, nothing sent.
	router.mu.Lock()
	router.node, router.url = "", ""
	router.mu.Unlock()
	if r := ts.do(t, "POST", eventsPath, tokenA, body); r.status != http.StatusAccepted || ing.n.Load() != 4 {
		t.Fatalf("no home: %d %s, ingested here %d", r.status, r.body, ing.n.Load())
	}
}
