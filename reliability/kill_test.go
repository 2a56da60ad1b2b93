package reliability

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestKill9DuringLoad kills livehooks with SIGKILL at three random moments
// while eight clients ingest, restarting it each time on the same data
// directory: every event answered 202 must reach the receiver (duplicates
// are allowed and reported), and a stream's events arrive in order.
func TestKill9DuringLoad(t *testing.T) {
	l := newLedger()
	rc := newReceiver(t, l)
	srv := newServer(t, t.TempDir())
	srv.start()
	srv.createConfig("live", rc.url())

	ld := &load{base: srv.base, app: "live", clients: 8, streams: 4, ledger: l}
	killDuringLoad(t, l, ld, 1000, func(int) (*server, time.Duration) { return srv, rand.N(300 * time.Millisecond) })
	srv.stop()
}

// killDuringLoad runs ld and, three times, each at a random moment of its
// own 2.5 s window, SIGKILLs the server pick names and starts it again after
// the pause pick gives, so that the kills land in the middle of commits,
// deliveries and recoveries alike; then it checks that at least minAcked
// events were acknowledged, that every one was delivered and that each
// stream's arrived in order.
func killDuringLoad(t *testing.T, l *ledger, ld *load, minAcked int, pick func(i int) (*server, time.Duration)) {
	t.Helper()
	ld.start()
	start := time.Now()
	for i := range 3 {
		at := time.Duration(i)*3*time.Second + time.Second + rand.N(2500*time.Millisecond)
		time.Sleep(time.Until(start.Add(at)))
		srv, down := pick(i)
		before := l.ackedCount()
		srv.kill()
		t.Logf("kill -9 of %s at %s for %s (%d events acknowledged so far)", srv.addr,
			time.Since(start).Round(time.Millisecond), down.Round(time.Millisecond), before)
		time.Sleep(down)
		srv.start()
	}
	time.Sleep(2 * time.Second) // load on the last incarnation too
	ld.halt()

	acked := l.ackedCount()
	if acked < minAcked {
		t.Errorf("only %d events acknowledged: the load was too light to mean much", acked)
	}
	l.waitDelivered(t, 60*time.Second)
	l.checkOrder(t)
	t.Logf("%d events sent, %d acknowledged, all delivered; slowest acknowledgement to callback %s; %d duplicates after the kills; %d ingest requests failed while a node was down; %d callbacks of unknown events",
		ld.sent.Load(), acked, l.slowest().Round(time.Millisecond), l.duplicates(), ld.errs.Load(), l.unknownCount())
}
