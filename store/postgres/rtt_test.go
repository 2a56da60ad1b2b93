package postgres

import (
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stallProxy forwards TCP connections to a PostgreSQL server and delays
// what the server sends: every chunk by delay when always is set, else only
// while stalls is above zero (each delayed chunk counts one down).
type stallProxy struct {
	ln     net.Listener
	target string
	delay  time.Duration
	always atomic.Bool
	stalls atomic.Int32
	wg     sync.WaitGroup
}

func newStallProxy(t *testing.T, target string, delay time.Duration) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target, delay: delay}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *stallProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			io.Copy(server, client)
			server.Close()
		}()
		go func() {
			defer p.wg.Done()
			p.copyStalling(client, server)
			client.Close()
		}()
	}
}

func (p *stallProxy) copyStalling(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if p.always.Load() || p.stalls.Add(-1) >= 0 {
				time.Sleep(p.delay)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// proxiedURL is dbURL with its host and port replaced by the proxy's.
func (p *stallProxy) proxiedURL(t *testing.T, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.ln.Addr().String()
	return u.String()
}

// A round trip that stalls now and then (a busy machine, a node starting
// beside others) does not make a local database look distant; one that is
// always long does.
func TestRoundTripTimeIsTheShortest(t *testing.T) {
	t.Parallel()
	dbURL := testDatabase(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	const delay = 20 * time.Millisecond
	p := newStallProxy(t, u.Host, delay)
	db := openTest(t, p.proxiedURL(t, dbURL), Options{})
	if _, err := db.RoundTripTime(ctx); err != nil {
		t.Fatal(err)
	}

	// Six of the next answers stall: more than half of ten pings can be
	// slow, and still the database is near.
	p.stalls.Store(6)
	rtt, err := db.RoundTripTime(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rtt >= delay {
		t.Errorf("round trip with six stalled answers = %v, want the shortest ping (< %v)", rtt, delay)
	}
	if left := p.stalls.Load(); left > 0 {
		t.Fatalf("%d stalls unused: fewer answers than expected came through the proxy", left)
	}

	// Every answer late: the database is that far.
	p.always.Store(true)
	rtt, err = db.RoundTripTime(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rtt < delay {
		t.Errorf("round trip with every answer %v late = %v, want at least that", delay, rtt)
	}
}
