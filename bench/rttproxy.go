package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// rttProxy is a TCP proxy on 127.0.0.1 that adds a round-trip time between
// livehooks and PostgreSQL: every chunk read from one side is written to the
// other rtt/2 after it was read. Chunks queue in order behind one writer per
// direction, each waiting only for its own due time, so back-to-back and
// pipelined chunks are delayed once, not once per chunk ahead of them.
type rttProxy struct {
	ln       net.Listener
	upstream string
	half     time.Duration
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	closed   bool
}

func startRTTProxy(upstream string, rtt time.Duration) (*rttProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &rttProxy{ln: ln, upstream: upstream, half: rtt / 2, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *rttProxy) addr() string { return p.ln.Addr().String() }

func (p *rttProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c)
		}()
	}
}

func (p *rttProxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		if p.closed {
			return false
		}
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *rttProxy) serve(client net.Conn) {
	defer client.Close()
	if !p.track(client, true) {
		return
	}
	defer p.track(client, false)
	server, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
	if err != nil {
		vlogf("rtt proxy: dial %s: %v", p.upstream, err)
		return
	}
	defer server.Close()
	if !p.track(server, true) {
		return
	}
	defer p.track(server, false)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(server, client) }()
	go func() { defer wg.Done(); p.pipe(client, server) }()
	wg.Wait()
}

type delayedChunk struct {
	due time.Time
	b   []byte
}

// pipe copies src to dst, each chunk rtt/2 after it was read. The reader
// never waits for the writer's delays (only for a full queue).
func (p *rttProxy) pipe(dst, src net.Conn) {
	q := make(chan delayedChunk, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		failed := false
		for c := range q {
			if failed {
				continue
			}
			if d := time.Until(c.due); d > 0 {
				time.Sleep(d)
			}
			if _, err := dst.Write(c.b); err != nil {
				failed = true
				_ = src.Close() // unblock the reader
			}
			bufPool.Put(&c.b)
		}
		if tc, ok := dst.(*net.TCPConn); ok && !failed {
			_ = tc.CloseWrite()
		} else {
			_ = dst.Close()
		}
	}()
	for {
		bp, _ := bufPool.Get().(*[]byte)
		if bp == nil {
			b := make([]byte, 32<<10)
			bp = &b
		}
		b := (*bp)[:cap(*bp)]
		n, err := src.Read(b)
		if n > 0 {
			q <- delayedChunk{due: time.Now().Add(p.half), b: b[:n]}
		} else {
			bufPool.Put(bp)
		}
		if err != nil {
			break
		}
	}
	close(q)
	<-done
}

var bufPool sync.Pool

func (p *rttProxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	p.wg.Wait()
}

// pingPostgres measures round trips to a PostgreSQL server at addr: it logs
// in as user to database (trust authentication, as on the bench's server)
// and times n "SELECT 1" simple queries, each one round trip, returning the
// median. Where the login fails (a password is asked) it times SSLRequests on
// fresh connections instead, which also count the server's fork.
func pingPostgres(addr, user, database string, n int) (time.Duration, string, error) {
	d, err := pingQuery(addr, user, database, n)
	if err == nil {
		return d, "SELECT 1", nil
	}
	d, err2 := pingSSLRequest(addr, n)
	if err2 != nil {
		return 0, "", fmt.Errorf("%v; %v", err, err2)
	}
	return d, "SSLRequest", nil
}

func pingQuery(addr, user, database string, n int) (time.Duration, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	// StartupMessage: length, protocol 3.0, user, database.
	params := "user\x00" + user + "\x00database\x00" + database + "\x00\x00"
	msg := binary.BigEndian.AppendUint32(nil, uint32(8+len(params)))
	msg = binary.BigEndian.AppendUint32(msg, 196608)
	msg = append(msg, params...)
	if _, err := c.Write(msg); err != nil {
		return 0, err
	}
	readUntilReady := func() error {
		var hdr [5]byte
		for {
			if _, err := io.ReadFull(c, hdr[:]); err != nil {
				return err
			}
			body := make([]byte, int(binary.BigEndian.Uint32(hdr[1:]))-4)
			if _, err := io.ReadFull(c, body); err != nil {
				return err
			}
			switch hdr[0] {
			case 'E':
				return fmt.Errorf("postgres: %s", bytes.ReplaceAll(body, []byte{0}, []byte{' '}))
			case 'R':
				if len(body) < 4 || binary.BigEndian.Uint32(body) != 0 {
					return errors.New("postgres asks for a password")
				}
			case 'Z':
				return nil
			}
		}
	}
	if err := readUntilReady(); err != nil {
		return 0, err
	}
	q := "SELECT 1\x00"
	query := append([]byte{'Q'}, binary.BigEndian.AppendUint32(nil, uint32(4+len(q)))...)
	query = append(query, q...)
	var ds []time.Duration
	for range n {
		start := time.Now()
		if _, err := c.Write(query); err != nil {
			return 0, err
		}
		if err := readUntilReady(); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(start))
	}
	_, _ = c.Write([]byte{'X', 0, 0, 0, 4})
	slices.Sort(ds)
	return ds[len(ds)/2], nil
}

// pingSSLRequest sends an SSLRequest on fresh connections and times the
// one-byte answer ('S' or 'N').
func pingSSLRequest(addr string, n int) (time.Duration, error) {
	var ds []time.Duration
	for range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return 0, err
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		// Int32 length 8, Int32 80877103 (the SSLRequest code).
		msg := []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}
		start := time.Now()
		_, err = c.Write(msg)
		var ans [1]byte
		if err == nil {
			_, err = io.ReadFull(c, ans[:])
		}
		d := time.Since(start)
		c.Close()
		if err != nil {
			return 0, err
		}
		if ans[0] != 'S' && ans[0] != 'N' {
			return 0, fmt.Errorf("unexpected answer %q to an SSLRequest: not a PostgreSQL server?", ans[0])
		}
		ds = append(ds, d)
	}
	slices.Sort(ds)
	return ds[len(ds)/2], nil
}

// echoCheck sends k one-byte messages, one every gap, on one connection
// through a proxy (to rtt) in front of an in-process echo server, and returns
// the median and the largest time from a message's write to its echo: a
// faithful proxy keeps both near rtt, whatever k (a proxy that delayed each
// chunk behind the previous one's delay would grow them with k).
func echoCheck(rtt time.Duration, k int, gap time.Duration) (median, worst time.Duration, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	p, err := startRTTProxy(ln.Addr().String(), rtt)
	if err != nil {
		return 0, 0, err
	}
	defer p.close()
	c, err := net.DialTimeout("tcp", p.addr(), 5*time.Second)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10*time.Second + time.Duration(k)*(gap+rtt)))
	base := time.Now()
	sent := make([]atomic.Int64, k) // since base
	errc := make(chan error, 1)
	go func() {
		for i := range k {
			sent[i].Store(int64(time.Since(base)))
			if _, err := c.Write([]byte{byte(i)}); err != nil {
				errc <- err
				return
			}
			time.Sleep(gap)
		}
		errc <- nil
	}()
	ds := make([]time.Duration, 0, k)
	buf := make([]byte, k)
	for got := 0; got < k; {
		n, err := c.Read(buf)
		now := int64(time.Since(base))
		if err != nil {
			return 0, 0, err
		}
		for _, b := range buf[:n] {
			ds = append(ds, time.Duration(now-sent[int(b)].Load()))
		}
		got += n
	}
	if err := <-errc; err != nil {
		return 0, 0, err
	}
	slices.Sort(ds)
	return ds[len(ds)/2], ds[len(ds)-1], nil
}
