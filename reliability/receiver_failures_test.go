package reliability

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// TestReceiverErrorsThenRecovers has the receiver fail two requests of
// every three for 3 s, with 500 and 429 + Retry-After: 1 in turn, while
// events stream in, then recover. Failures never come five in a row, so the
// destination's breaker stays closed and the retries themselves are tested:
// every acknowledged event is delivered, in order within its stream (later
// events wait for an earlier one's retries), and no retry after a 429 comes
// before its Retry-After.
func TestReceiverErrorsThenRecovers(t *testing.T) {
	var n, failed atomic.Int64
	failing := func(w http.ResponseWriter, r *http.Request) bool {
		k := n.Add(1)
		if k%3 == 0 {
			return false // this one gets through
		}
		_, _ = io.Copy(io.Discard, r.Body)
		failed.Add(1)
		status := http.StatusInternalServerError
		if k%3 == 2 {
			status = http.StatusTooManyRequests
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(status)
		return true
	}
	l := runFlakyReceiver(t, failing, 3*time.Second)

	// A retry after a 429 must wait for Retry-After (1 s).
	l.mu.Lock()
	defer l.mu.Unlock()
	retried := 0
	for id, tries := range l.tries {
		for i := 1; i < len(tries); i++ {
			if tries[i-1].status != http.StatusTooManyRequests {
				continue
			}
			retried++
			if gap := tries[i].at.Sub(tries[i-1].at); gap < 950*time.Millisecond {
				t.Errorf("%s: retried %s after a 429 with Retry-After: 1", id, gap)
			}
		}
	}
	if retried == 0 {
		t.Errorf("no delivery was retried after a 429: the test did not test Retry-After")
	}
	t.Logf("receiver failed %d requests with 500 or 429; %d retries after a 429 all waited for Retry-After", failed.Load(), retried)
}

// TestReceiverDropsConnections has the receiver hijack and close the
// connection of every request for 3 s, without an answer (half the time
// before reading the body, half the time after), then recover.
func TestReceiverDropsConnections(t *testing.T) {
	var n atomic.Int64
	dropping := func(w http.ResponseWriter, r *http.Request) bool {
		if n.Add(1)%2 == 0 {
			_, _ = io.Copy(io.Discard, r.Body)
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		conn.Close()
		return true
	}
	runFlakyReceiver(t, dropping, 3*time.Second)
	t.Logf("receiver dropped %d connections", n.Load())
}

// runFlakyReceiver ingests events while the receiver misbehaves for failFor,
// then for one more second once it answers 200 again, and waits for every
// acknowledged event to be delivered in order. Recovery waits for the
// destination's circuit breaker (open 10 s after 5 consecutive failures).
func runFlakyReceiver(t *testing.T, behave func(http.ResponseWriter, *http.Request) bool, failFor time.Duration) *ledger {
	t.Helper()
	l := newLedger()
	rc := newReceiver(t, l)
	rc.set(func(w http.ResponseWriter, r *http.Request) bool {
		sw := &statusWriter{ResponseWriter: w}
		answered := behave(sw, r)
		if answered {
			l.attempt(r.Header.Get("webhook-id"), sw.status)
		}
		return answered
	})
	srv := newServer(t, t.TempDir(), "--poll-interval", "50ms")
	srv.start()
	srv.createConfig("live", rc.url())

	ld := &load{base: srv.base, app: "live", clients: 4, streams: 5, ledger: l, pause: 10 * time.Millisecond}
	ld.start()
	time.Sleep(failFor)
	rc.set(nil)
	t.Logf("receiver recovered after %s; %d events acknowledged", failFor, l.ackedCount())
	time.Sleep(time.Second)
	ld.halt()
	if ld.errs.Load() > 0 || ld.statuses() != "" {
		t.Errorf("ingest failed while only the receiver misbehaved: %d errors (first: %v), statuses %s", ld.errs.Load(), ld.firstErr.Load(), ld.statuses())
	}
	start := time.Now()
	l.waitDelivered(t, 90*time.Second)
	l.checkOrder(t)
	t.Logf("%d acknowledged events all delivered %s after the load stopped; %d duplicates", l.ackedCount(), time.Since(start).Round(time.Millisecond), l.duplicates())
	srv.stop()
	return l
}

// statusWriter remembers the status a behaviour answered (0 for none).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Hijack lets a behaviour drop the connection through the wrapper.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.ResponseWriter.(http.Hijacker).Hijack()
}
