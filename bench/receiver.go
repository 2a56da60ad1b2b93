package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Receiver behaviours.
const (
	modeOK   int32 = iota // 200, record the callback
	modeDown              // 503, record nothing
	modeHang              // hold the request until the client gives up
)

// receiver is one loopback callback endpoint: a plain net/http server with
// keep-alive, as a user's webhook receiver would be.
type receiver struct {
	index    int
	url      string
	srv      *http.Server
	ln       net.Listener
	mode     atomic.Int32
	tracker  atomic.Pointer[tracker]
	requests atomic.Int64 // every request, whatever the mode
	closing  chan struct{}
	wg       sync.WaitGroup
}

func startReceivers(n int) ([]*receiver, error) {
	rs := make([]*receiver, 0, n)
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			stopReceivers(rs)
			return nil, err
		}
		r := &receiver{index: i, ln: ln, closing: make(chan struct{})}
		r.url = "http://" + ln.Addr().String() + "/hook/" + strconv.Itoa(i)
		r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
		r.wg.Add(1)
		go func() { defer r.wg.Done(); _ = r.srv.Serve(ln) }()
		rs = append(rs, r)
	}
	return rs, nil
}

func stopReceivers(rs []*receiver) {
	for _, r := range rs {
		close(r.closing)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = r.srv.Shutdown(ctx)
		cancel()
		_ = r.srv.Close()
		r.wg.Wait()
	}
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.requests.Add(1)
	switch r.mode.Load() {
	case modeDown:
		_, _ = io.Copy(io.Discard, req.Body)
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	case modeHang:
		select {
		case <-req.Context().Done():
		case <-r.closing:
		}
		return
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if t := r.tracker.Load(); t != nil {
		t.received(r.index, req.Header.Get("webhook-id"), body)
	}
	w.WriteHeader(http.StatusOK)
}

func setTracker(rs []*receiver, t *tracker) {
	for _, r := range rs {
		r.tracker.Store(t)
	}
}
