package reliability

import (
	"crypto/rand"
	"encoding/hex"
	rand2 "math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livehooks/livehooks/store/postgres/pgtest"
)

// newPostgresNodes starts n livehooks nodes on one fresh PostgreSQL database,
// with the same master key (sealed callback keys open on every node) and
// distinct node ids, each on a data directory of its own.
func newPostgresNodes(t *testing.T, n int) []*server {
	t.Helper()
	dbURL := pgtest.Database(t)
	var key [32]byte
	_, _ = rand.Read(key[:])
	nodes := make([]*server, n)
	for i := range nodes {
		s := newServer(t, t.TempDir(), "--database-url", dbURL, "--node-id", "node-"+string(rune('a'+i)))
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

// TestKill9DuringLoadPostgres is TestKill9DuringLoad on PostgreSQL.
func TestKill9DuringLoadPostgres(t *testing.T) {
	l := newLedger()
	rc := newReceiver(t, l)
	srv := newPostgresNodes(t, 1)[0]
	srv.createConfig("live", rc.url())

	ld := &load{base: srv.base, app: "live", clients: 8, streams: 4, ledger: l}
	ld.start()
	start := time.Now()
	for i := range 3 {
		at := time.Duration(i)*3*time.Second + time.Second + rand2.N(2500*time.Millisecond)
		time.Sleep(time.Until(start.Add(at)))
		before := l.ackedCount()
		srv.kill()
		t.Logf("kill -9 at %s (%d events acknowledged so far)", time.Since(start).Round(time.Millisecond), before)
		time.Sleep(rand2.N(300 * time.Millisecond))
		srv.start()
	}
	time.Sleep(2 * time.Second)
	ld.halt()

	acked := l.ackedCount()
	if acked < 500 {
		t.Errorf("only %d events acknowledged: the load was too light to mean much", acked)
	}
	l.waitDelivered(t, 60*time.Second)
	l.checkOrder(t)
	t.Logf("%d events sent, %d acknowledged, all delivered; %d duplicates after the kills; %d ingest requests failed while livehooks was down",
		ld.sent.Load(), acked, l.duplicates(), ld.errs.Load())
	srv.stop()
}

// TestKill9MultiNodePostgres runs three nodes on one database, each stream's
// consecutive events posted to different nodes, and SIGKILLs a node three
// times under load: once for 6 s (its lanes must move to the others, not
// wait for its leases), twice briefly. Every acknowledged event is delivered,
// in order per stream, and none waits more than 10 s for its callback.
func TestKill9MultiNodePostgres(t *testing.T) {
	l := newLedger()
	rc := newReceiver(t, l)
	nodes := newPostgresNodes(t, 3)
	nodes[0].createConfig("live", rc.url())

	ld := &load{base: spread(nodes), app: "live", clients: 8, streams: 6, ledger: l, pause: 2 * time.Millisecond}
	ld.start()
	start := time.Now()
	for i, down := range []time.Duration{6 * time.Second, rand2.N(300 * time.Millisecond), rand2.N(300 * time.Millisecond)} {
		time.Sleep(time.Second + rand2.N(1500*time.Millisecond))
		victim := nodes[rand2.N(len(nodes))]
		before := l.ackedCount()
		victim.kill()
		t.Logf("kill -9 of node %d at %s for %s (%d events acknowledged so far)", i,
			time.Since(start).Round(time.Millisecond), down.Round(time.Millisecond), before)
		time.Sleep(down)
		victim.start()
	}
	time.Sleep(2 * time.Second)
	ld.halt()

	acked := l.ackedCount()
	if acked < 500 {
		t.Errorf("only %d events acknowledged: the load was too light to mean much", acked)
	}
	l.waitDelivered(t, 60*time.Second)
	l.checkOrder(t)
	if worst := l.slowest(); worst > 10*time.Second {
		t.Errorf("an acknowledged event waited %s for its callback, want at most 10 s", worst.Round(time.Millisecond))
	}
	t.Logf("%d events sent, %d acknowledged, all delivered; slowest acknowledgement to callback %s; %d duplicates; %d ingest requests failed on a killed node",
		ld.sent.Load(), acked, l.slowest().Round(time.Millisecond), l.duplicates(), ld.errs.Load())
	for _, s := range nodes {
		s.stop()
	}
}
