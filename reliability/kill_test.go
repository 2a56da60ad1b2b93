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
	ld.start()
	// Three kills, each at a random moment of its own 2.5 s window, so that
	// they land in the middle of commits, deliveries and recoveries alike.
	start := time.Now()
	for i := range 3 {
		at := time.Duration(i)*3*time.Second + time.Second + rand.N(2500*time.Millisecond)
		time.Sleep(time.Until(start.Add(at)))
		before := l.ackedCount()
		srv.kill()
		t.Logf("kill -9 at %s (%d events acknowledged so far)", time.Since(start).Round(time.Millisecond), before)
		time.Sleep(rand.N(300 * time.Millisecond))
		srv.start()
	}
	time.Sleep(2 * time.Second) // load on the last incarnation too
	ld.halt()

	acked := l.ackedCount()
	if acked < 1000 {
		t.Errorf("only %d events acknowledged: the load was too light to mean much", acked)
	}
	l.waitDelivered(t, 60*time.Second)
	l.checkOrder(t)
	t.Logf("%d events sent, %d acknowledged, all delivered; %d duplicates after the kills; %d ingest requests failed while livehooks was down; %d callbacks of unknown events",
		ld.sent.Load(), acked, l.duplicates(), ld.errs.Load(), l.unknownCount())
	srv.stop()
}
