package reliability

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	rand2 "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livehooks/livehooks/store/postgres/pgtest"
)

// newPostgresNodes starts n livehooks nodes on one fresh PostgreSQL database,
// with the same master key (sealed callback keys open on every node) and
// distinct node ids, each on a data directory of its own, and args.
func newPostgresNodes(t *testing.T, n int, args ...string) []*server {
	return startPostgresNodes(t, n, false, args...)
}

// startPostgresNodes is newPostgresNodes; with advertise, each node gives
// its address as --advertise-url, so that the nodes forward each ingest to
// the home of its stream.
func startPostgresNodes(t *testing.T, n int, advertise bool, args ...string) []*server {
	t.Helper()
	dbURL := pgtest.Database(t)
	var key [32]byte
	_, _ = rand.Read(key[:])
	nodes := make([]*server, n)
	for i := range nodes {
		s := newServer(t, t.TempDir(), append([]string{"--database-url", dbURL, "--node-id", "node-" + string(rune('a'+i))}, args...)...)
		if advertise {
			s.args = append(s.args, "--advertise-url", s.base())
		}
		s.env = []string{"LIVEHOOKS_MASTER_KEY=" + hex.EncodeToString(key[:])}
		s.start()
		nodes[i] = s
	}
	return nodes
}

// spread returns a load's base: the nodes that are up, in turn, so that a
// stream's consecutive events reach different nodes.
func spread(nodes []*server) func() string {
	var next atomic.Int64
	return func() string {
		for range nodes {
			s := nodes[int(next.Add(1))%len(nodes)]
			if s.up.Load() {
				return s.base()
			}
		}
		return nodes[0].base() // all down: the request fails and is counted
	}
}

// TestKill9DuringLoadPostgres is TestKill9DuringLoad on PostgreSQL: with
// one group commit at a time (the default with a local database), and with
// four in flight (--concurrent-commits, the default for a distant one), where
// each stream's events wait for its transaction in flight and the streams'
// transactions commit in any order.
func TestKill9DuringLoadPostgres(t *testing.T) {
	for _, c := range []struct {
		name    string
		streams int
		commits string
	}{{"one commit at a time", 4, "1"}, {"four commits in flight", 16, "4"}} {
		t.Run(c.name, func(t *testing.T) {
			l := newLedger()
			rc := newReceiver(t, l)
			srv := newPostgresNodes(t, 1, "--concurrent-commits", c.commits)[0]
			srv.createConfig("live", rc.url())
			ld := &load{base: srv.base, app: "live", clients: 8, streams: c.streams, ledger: l}
			killDuringLoad(t, l, ld, 500, func(int) (*server, time.Duration) { return srv, rand2.N(300 * time.Millisecond) })
			srv.stop()
		})
	}
}

// TestKill9MultiNodePostgres runs three nodes on one database, each stream's
// consecutive events posted to different nodes, and SIGKILLs a node three
// times under load: first for 6 s (its lanes must move to the others, not
// wait for its leases), then briefly. Every acknowledged event is delivered,
// in order per stream, and none waits more than 10 s for its callback. It
// runs with each node ingesting what it gets, and with the nodes forwarding
// each ingest to the home of its stream (--advertise-url), where a killed
// home makes the others ingest its streams themselves.
func TestKill9MultiNodePostgres(t *testing.T) {
	t.Run("each node ingests", func(t *testing.T) { kill9MultiNode(t, false) })
	t.Run("forwarded to the home", func(t *testing.T) { kill9MultiNode(t, true) })
}

func kill9MultiNode(t *testing.T, advertise bool) {
	l := newLedger()
	rc := newReceiver(t, l)
	nodes := startPostgresNodes(t, 3, advertise)
	nodes[0].createConfig("live", rc.url())
	ld := &load{base: spread(nodes), app: "live", clients: 8, streams: 6, ledger: l, pause: 2 * time.Millisecond}
	killDuringLoad(t, l, ld, 500, func(i int) (*server, time.Duration) {
		down := rand2.N(300 * time.Millisecond)
		if i == 0 {
			down = 6 * time.Second
		}
		return nodes[rand2.N(len(nodes))], down
	})
	if worst := l.slowest(); worst > 10*time.Second {
		t.Errorf("an acknowledged event waited %s for its callback, want at most 10 s", worst.Round(time.Millisecond))
	}
	var forwarded float64
	for _, s := range nodes {
		forwarded += metric(t, s, `livehooks_ingest_forwards_total{outcome="forwarded"}`)
	}
	if advertise && forwarded == 0 || !advertise && forwarded != 0 {
		t.Errorf("%v ingests forwarded (advertised URLs: %v)", forwarded, advertise)
	}
	for _, s := range nodes {
		s.stop()
	}
}

// metric reads a sample of a running node's /metrics (0 when absent).
func metric(t *testing.T, s *server, sample string) float64 {
	t.Helper()
	resp, err := http.Get(s.base() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}
