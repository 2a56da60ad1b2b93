package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/store/postgres"
)

// loadSpec describes one run of the load generator.
type loadSpec struct {
	rate     int           // events/s; 0 = as fast as possible
	duration time.Duration // stop claiming events after this long
	total    int64         // stop after this many events; 0 = no limit
	clients  int
	batch    int
	streams  int
	// dest maps a stream to the receiver its events go to.
	dest       func(stream int) int
	cycleTypes bool // RECORD_START, NEW_FILE_START, FILE_COMPLETE, OVER in turn per stream
	// progress, when set, is called about once a second.
	progress func(sent int64, elapsed time.Duration)
}

// poster sends one request carrying events (one request per event for a
// direct poster) and records acknowledgements in the tracker.
type poster interface {
	post(ctx context.Context, tr *tracker, evs []benchEvent) error
}

// benchEvent is one event about to be sent.
type benchEvent struct {
	seq    int64
	stream int
	dest   int
	typ    string
	slot   *slot
}

// loadStats are the client side figures of a run.
type loadStats struct {
	Sent     int64            `json:"sent"`     // events sent
	Acked    int64            `json:"acked"`    // events acknowledged (202, or 2xx for the baseline)
	Requests int64            `json:"requests"` // HTTP requests
	Errors   map[string]int64 `json:"errors,omitempty"`
	Elapsed  time.Duration    `json:"-"`
	// Behind counts events sent more than 10 ms after their intended time
	// (fixed rate): the clients could not keep up.
	Behind int64 `json:"behind"`
}

// Event types, as the ingest API takes them.
const (
	recordStart        = "RECORD_START"
	recordNewFileStart = "RECORD_NEW_FILE_START"
	recordFileComplete = "RECORD_FILE_COMPLETE"
	recordOver         = "RECORD_OVER"
)

var typeCycle = []string{recordStart, recordNewFileStart, recordFileComplete, recordOver}

// runLoad drives p with spec, recording every event in tr.
func runLoad(ctx context.Context, tr *tracker, p poster, spec loadSpec) *loadStats {
	st := &loadStats{Errors: map[string]int64{}}
	if spec.batch < 1 {
		spec.batch = 1
	}
	clients := spec.clients
	if spec.streams < clients {
		spec.streams = clients
	}
	var (
		sent, acked, reqs, behind atomic.Int64
		errMu                     sync.Mutex
		wg                        sync.WaitGroup
	)
	start := time.Now()
	startNS := tr.now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if spec.progress != nil {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					spec.progress(sent.Load(), time.Since(start))
				}
			}
		}()
	}
	for w := range clients {
		owned := (spec.streams - w + clients - 1) / clients // streams w, w+clients, …
		wg.Add(1)
		go func() {
			defer wg.Done()
			evs := make([]benchEvent, spec.batch)
			round := 0
			k := 0
			for ctx.Err() == nil {
				var seq int64
				if spec.rate > 0 {
					seq = tr.claim(spec.batch)
					last := seq + int64(spec.batch) - 1
					due := startNS + last*int64(time.Second)/int64(spec.rate)
					if time.Duration(due-startNS) >= spec.duration {
						return
					}
					if d := time.Duration(due - tr.now()); d > 0 {
						select {
						case <-time.After(d):
						case <-ctx.Done():
							return
						}
					} else if d < -10*time.Millisecond {
						behind.Add(int64(spec.batch))
					}
				} else {
					if time.Since(start) >= spec.duration {
						return
					}
					seq = tr.claim(spec.batch)
				}
				n := spec.batch
				if spec.total > 0 {
					if seq >= spec.total {
						return
					}
					n = int(min(int64(n), spec.total-seq))
				}
				now := tr.now()
				for i := range n {
					stream := w + clients*(k%owned)
					k++
					if k%owned == 0 {
						round++
					}
					typ := recordFileComplete
					if spec.cycleTypes {
						typ = typeCycle[round%len(typeCycle)]
					}
					s := tr.slot(seq + int64(i))
					sched := now
					if spec.rate > 0 {
						sched = startNS + (seq+int64(i))*int64(time.Second)/int64(spec.rate)
					}
					d := spec.dest(stream)
					s.sched.Store(sched)
					s.dest.Store(int32(d) + 1)
					evs[i] = benchEvent{seq: seq + int64(i), stream: stream, dest: d, typ: typ, slot: s}
				}
				sent.Add(int64(n))
				reqs.Add(1)
				err := p.post(ctx, tr, evs[:n])
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					errMu.Lock()
					st.Errors[err.Error()]++
					errMu.Unlock()
					continue
				}
				acked.Add(int64(n))
			}
		}()
	}
	wg.Wait()
	st.Elapsed = time.Since(start)
	st.Sent, st.Acked, st.Requests, st.Behind = sent.Load(), acked.Load(), reqs.Load(), behind.Load()
	return st
}

// newClient returns an HTTP client with keep-alive connections for n
// concurrent users.
func newClient(n int, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        4 * n,
			MaxIdleConnsPerHost: 2 * n,
			IdleConnTimeout:     90 * time.Second,
		},
	}
}

// ingestPoster posts events to livehooks' ingest API. With several nodes
// (multi-node mode) it sends each stream's consecutive requests to
// consecutive nodes, so that no two events of a stream in a row go to the
// same node (the hard case for per-stream order), skipping nodes marked down;
// with nodeIDs (-affinity), to the node that is home to the stream's lane
// among the nodes up.
type ingestPoster struct {
	client    *http.Client
	urls      []string
	configIDs []string
	pool      sync.Pool
	// down reports whether node i is down (killed): it gets no requests.
	down func(i int) bool
	// last holds each stream's last node, perNode the requests per node.
	last    []atomic.Int32
	perNode []atomic.Int64
	// nodeIDs are the nodes' ids, in the order of urls, with -affinity.
	nodeIDs []string
}

func newIngestPoster(base string, configIDs []string, clients int) *ingestPoster {
	return newMultiPoster([]string{base}, configIDs, clients, 0, nil)
}

// newMultiPoster posts to several livehooks nodes (bases); streams is the
// number of streams of the load.
func newMultiPoster(bases []string, configIDs []string, clients, streams int, down func(int) bool) *ingestPoster {
	p := &ingestPoster{
		client:    newClient(clients, 60*time.Second),
		configIDs: configIDs,
		down:      down,
		perNode:   make([]atomic.Int64, len(bases)),
	}
	for _, b := range bases {
		p.urls = append(p.urls, b+"/v1/"+benchProject+"/record/events")
	}
	if len(bases) > 1 {
		p.last = make([]atomic.Int32, streams)
		for s := range p.last {
			p.last[s].Store(int32(s % len(bases)))
		}
	}
	return p
}

// pick returns the node of a request whose first event is e.
func (p *ingestPoster) pick(e benchEvent) int {
	n := len(p.urls)
	if n == 1 || e.stream >= len(p.last) {
		return 0
	}
	if p.nodeIDs != nil {
		var up []string
		for i, id := range p.nodeIDs {
			if p.down == nil || !p.down(i) {
				up = append(up, id)
			}
		}
		home := postgres.LaneHome(livehooks.LaneKey(p.configIDs[e.dest], "s"+strconv.Itoa(e.stream)), up)
		return max(slices.Index(p.nodeIDs, home), 0)
	}
	stream := e.stream
	last := int(p.last[stream].Load())
	next := (last + 1) % n
	for j := 1; j <= n; j++ {
		c := (last + j) % n
		if p.down == nil || !p.down(c) {
			next = c
			break
		}
	}
	p.last[stream].Store(int32(next))
	return next
}

func appendEvent(b []byte, e benchEvent) []byte {
	seq := strconv.FormatInt(e.seq, 10)
	stream := strconv.Itoa(e.stream)
	dest := strconv.Itoa(e.dest)
	b = append(b, `{"event_type":"`...)
	b = append(b, e.typ...)
	b = append(b, `","publish_domain":"`+benchDomain+`","app":"r`...)
	b = append(b, dest...)
	b = append(b, `","stream":"s`...)
	b = append(b, stream...)
	b = append(b, `","task_id":"t`...)
	b = append(b, seq...)
	b = append(b, '"')
	if e.typ == recordFileComplete {
		b = append(b, `,"record_format":"FLV","download_url":"https://cdn.`+benchDomain+`/r`...)
		b = append(b, dest...)
		b = append(b, "/s"...)
		b = append(b, stream...)
		b = append(b, "/t"...)
		b = append(b, seq...)
		b = append(b, `.flv","file_size":10485760,"record_duration":60,"width":1280,"height":720`...)
	}
	return append(b, '}')
}

func (p *ingestPoster) post(ctx context.Context, tr *tracker, evs []benchEvent) error {
	bp, _ := p.pool.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	b := (*bp)[:0]
	if len(evs) > 1 {
		b = append(b, '[')
	}
	for i, e := range evs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendEvent(b, e)
	}
	if len(evs) > 1 {
		b = append(b, ']')
	}
	*bp = b
	defer p.pool.Put(bp)
	node := p.pick(evs[0])
	p.perNode[node].Add(1)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.urls[node], bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Auth-Token", benchToken)
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("ingest: %s", shortErr(err))
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("ingest: read answer: %s", shortErr(err))
	}
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("ingest: HTTP %d", resp.StatusCode)
	}
	ack := tr.now()
	ids := eventIDs(body)
	if len(ids) != len(evs) {
		return fmt.Errorf("ingest: %d event ids in the answer for %d events", len(ids), len(evs))
	}
	for i, e := range evs {
		e.slot.expHash.Store(expectedWebhookHash(ids[i], p.configIDs[e.dest]))
	}
	for _, e := range evs {
		e.slot.ack.Store(ack)
	}
	return nil
}

// eventIDs extracts the event_id values of a 202 answer, in order.
func eventIDs(body []byte) []string {
	const key = `"event_id":"`
	var ids []string
	for {
		i := bytes.Index(body, []byte(key))
		if i < 0 {
			return ids
		}
		body = body[i+len(key):]
		j := bytes.IndexByte(body, '"')
		if j < 0 {
			return ids
		}
		ids = append(ids, string(body[:j]))
		body = body[j:]
	}
}

// directPoster is the baseline: a plain Go client posting callback bodies
// straight to the receivers, one request per event.
type directPoster struct {
	client *http.Client
	urls   []string
}

func (p *directPoster) post(ctx context.Context, tr *tracker, evs []benchEvent) error {
	for _, e := range evs {
		id := webhookID(strconv.FormatInt(e.seq, 10), "baseline")
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.urls[e.dest], bytes.NewReader(callbackBody(e)))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("webhook-id", id)
		req.Header.Set("webhook-timestamp", strconv.FormatInt(time.Now().Unix(), 10))
		resp, err := p.client.Do(req)
		if err != nil {
			return fmt.Errorf("direct: %s", shortErr(err))
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("direct: HTTP %d", resp.StatusCode)
		}
		e.slot.expHash.Store(webhookHash(id))
		e.slot.ack.Store(tr.now())
	}
	return nil
}

// callbackBody is a callback as livehooks sends it for e (the seed 002
// fields of a RECORD_FILE_COMPLETE, signed), for the baseline.
func callbackBody(e benchEvent) []byte {
	seq := strconv.FormatInt(e.seq, 10)
	b := make([]byte, 0, 512)
	b = append(b, `{"project_id":"`+benchProject+`","job_id":"0123456789abcdef0123456789abcdef","task_id":"t`...)
	b = append(b, seq...)
	b = append(b, `","event_type":"`...)
	b = append(b, e.typ...)
	b = append(b, `","publish_domain":"`+benchDomain+`","app":"r`...)
	b = strconv.AppendInt(b, int64(e.dest), 10)
	b = append(b, `","stream":"s`...)
	b = strconv.AppendInt(b, int64(e.stream), 10)
	b = append(b, `","record_format":"FLV","download_url":"https://cdn.`+benchDomain+`/x.flv","asset_id":"","file_size":10485760,"record_duration":60,"start_time":"","end_time":"","width":1280,"height":720,"auth_sign":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","auth_timestamp":1700000000}`...)
	return b
}

// webhookID is livehooks.WebhookID: msg_ + hex(sha256(eventID/configID)[:16]).
func webhookID(eventID, configID string) string {
	sum := sha256.Sum256([]byte(eventID + "/" + configID))
	return "msg_" + hex.EncodeToString(sum[:16])
}

func shortErr(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	s := err.Error()
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}
