package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livehooks/livehooks/signature"
	"github.com/livehooks/livehooks/store/postgres/pgtest"
)

// testDatabaseURL creates a fresh PostgreSQL database, dropped when the test
// ends, and returns its URL (pgtest).
func testDatabaseURL(t *testing.T) string { return pgtest.Database(t) }

// TestServeWithPostgreSQL runs two serve nodes on one PostgreSQL database
// (sharing a data directory too: it is locked only for SQLite). A config
// created through one node delivers, signed, an event ingested through the
// other.
func TestServeWithPostgreSQL(t *testing.T) {
	dbURL := testDatabaseURL(t)
	const key = "PgServeKey0123456789abcdefghijABCDEFGHIJ"
	var (
		mu     sync.Mutex
		bodies [][]byte
		valid  []error
	)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, b)
		valid = append(valid, signature.VerifyBody("HMACSHA256", key, b, time.Now()))
		mu.Unlock()
	}))
	defer rcv.Close()

	var mk [32]byte
	_, _ = rand.Read(mk[:])
	env := map[string]string{"LIVEHOOKS_LOG_FORMAT": "json", "LIVEHOOKS_MASTER_KEY": hex.EncodeToString(mk[:])}
	dir := t.TempDir()
	node := func(id string) (*running, string) {
		srv := start(t, env, "serve", "--listen", "127.0.0.1:0", "--data-dir", dir, "--database-url", dbURL,
			"--token", "T:p1", "--allow-callback-cidr", "127.0.0.0/8", "--node-id", id)
		return srv, srv.serveAddr(t)
	}
	n1, base1 := node("n1")
	n2, base2 := node("n2")

	status, body := request(t, "POST", base1+"/v1/p1/record/callbacks", "T", `{"publish_domain":"push.example.com","app":"live",`+
		`"notify_callback_url":"`+rcv.URL+`/cb","notify_event_subscription":["RECORD_START"],"key":"`+key+`"}`)
	if status != 201 {
		t.Fatalf("create on n1: %d %s", status, body)
	}
	var c struct{ ID string }
	_ = json.Unmarshal([]byte(body), &c)
	if status, body := request(t, "GET", base2+"/v1/p1/record/callbacks/"+c.ID, "T", ""); status != 200 {
		t.Fatalf("show on n2: %d %s", status, body)
	}
	status, body = request(t, "POST", base2+"/v1/p1/record/events", "T",
		`{"event_type":"RECORD_START","publish_domain":"push.example.com","app":"live","stream":"cam1"}`)
	if status != 202 {
		t.Fatalf("ingest on n2: %d %s", status, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(bodies)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no callback\nn1:\n%s\nn2:\n%s", n1.stderr.String(), n2.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	var ev map[string]any
	_ = json.Unmarshal(bodies[0], &ev)
	if len(bodies) != 1 || valid[0] != nil || ev["event_type"] != "RECORD_START" || ev["stream"] != "cam1" || ev["project_id"] != "p1" {
		t.Fatalf("callbacks %q, signature %v", bodies, valid)
	}
	mu.Unlock()

	for _, n := range []*running{n1, n2} {
		if err := n.stop(t); err != nil {
			t.Fatalf("serve: %v", err)
		}
		logs := n.stderr.String()
		if !strings.Contains(logs, `"backend":"postgres"`) || !strings.Contains(logs, `"msg":"stopped"`) {
			t.Fatalf("logs:\n%s", logs)
		}
		if strings.Contains(logs, key) {
			t.Fatal("the logs contain the key")
		}
	}
}
