package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// A tracker follows every event of one phase (a livehooks run or a baseline
// run) by its sequence number, which travels in task_id ("t<seq>") so the
// receiver can tell when it was sent without parsing JSON. Slots live in
// chunks allocated on demand, so the tracker needs no size up front.
type tracker struct {
	epoch  time.Time // times are nanoseconds since epoch
	next   atomic.Int64
	chunks [maxChunks]atomic.Pointer[chunk]
	// lastSeq holds, per stream, the highest sequence delivered so far.
	lastSeq []atomic.Int64

	orderViolations atomic.Int64
	duplicates      atomic.Int64
	unknown         atomic.Int64 // receipts that carry no sequence of this phase
	lastRecv        atomic.Int64

	mu sync.Mutex
}

const (
	chunkBits = 16
	chunkSize = 1 << chunkBits
	maxChunks = 1024 // 64 M events
)

type chunk [chunkSize]slot

// slot is one event. All fields are atomics: clients, receivers and the final
// analysis touch them from different goroutines.
type slot struct {
	sched   atomic.Int64  // intended send time (ns since epoch)
	ack     atomic.Int64  // 2xx received (ns since epoch), 0 if not acknowledged
	first   atomic.Int64  // first receipt at a receiver
	recv    atomic.Uint32 // receipts
	dest    atomic.Int32  // receiver index + 1
	gotHash atomic.Uint64 // webhook-id of the first receipt, hashed
	expHash atomic.Uint64 // webhook-id expected from the event id and config id
}

func newTracker(streams int) *tracker {
	return &tracker{epoch: time.Now(), lastSeq: make([]atomic.Int64, streams)}
}

func (t *tracker) now() int64 { return int64(time.Since(t.epoch)) }

func (t *tracker) slot(seq int64) *slot {
	ci := seq >> chunkBits
	if ci < 0 || ci >= maxChunks {
		return nil
	}
	c := t.chunks[ci].Load()
	if c == nil {
		t.mu.Lock()
		if c = t.chunks[ci].Load(); c == nil {
			c = new(chunk)
			t.chunks[ci].Store(c)
		}
		t.mu.Unlock()
	}
	return &c[seq&(chunkSize-1)]
}

// claim reserves n consecutive sequence numbers.
func (t *tracker) claim(n int) int64 { return t.next.Add(int64(n)) - int64(n) }

// received records a callback at receiver dest. It parses only task_id and
// stream out of the body.
func (t *tracker) received(dest int, webhookID string, body []byte) {
	seq, ok := field(body, `"task_id":"t`)
	if !ok || seq >= t.next.Load() {
		t.unknown.Add(1)
		return
	}
	s := t.slot(seq)
	if s == nil {
		t.unknown.Add(1)
		return
	}
	now := t.now()
	if s.recv.Add(1) > 1 {
		t.duplicates.Add(1)
		return
	}
	s.first.Store(now)
	s.gotHash.Store(webhookHash(webhookID))
	for {
		last := t.lastRecv.Load()
		if now <= last || t.lastRecv.CompareAndSwap(last, now) {
			break
		}
	}
	if st, ok := field(body, `"stream":"s`); ok && st < int64(len(t.lastSeq)) {
		ls := &t.lastSeq[st]
		for {
			last := ls.Load()
			if seq < last {
				// The first delivery of an event older than one already
				// delivered on its stream.
				t.orderViolations.Add(1)
				break
			}
			if ls.CompareAndSwap(last, seq) {
				break
			}
		}
	}
}

// field reads the decimal number that follows key in body.
func field(body []byte, key string) (int64, bool) {
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := body[i+len(key):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	if j == 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return n, err == nil
}

// webhookHash condenses a webhook-id (msg_ + 32 hex) to 8 bytes; 1 when it is
// not of that form, so that it never matches an expected hash.
func webhookHash(id string) uint64 {
	if len(id) != 36 || id[:4] != "msg_" {
		return 1
	}
	var b [8]byte
	if _, err := hex.Decode(b[:], []byte(id[4:20])); err != nil {
		return 1
	}
	return binary.BigEndian.Uint64(b[:])
}

// expectedWebhookHash is webhookHash(livehooks.WebhookID(eventID, configID)):
// msg_ + hex(sha256(eventID/configID)[:16]).
func expectedWebhookHash(eventID, configID string) uint64 {
	sum := sha256.Sum256([]byte(eventID + "/" + configID))
	return binary.BigEndian.Uint64(sum[:8])
}

// forEach calls fn for every claimed slot.
func (t *tracker) forEach(fn func(seq int64, s *slot)) {
	n := t.next.Load()
	for seq := int64(0); seq < n; seq++ {
		fn(seq, t.slot(seq))
	}
}

// delivered counts acknowledged events delivered at least once, optionally
// only those of receivers for which want returns true.
func (t *tracker) progress(want func(dest int) bool) (acked, delivered int64) {
	t.forEach(func(_ int64, s *slot) {
		if s.ack.Load() == 0 {
			return
		}
		if d := int(s.dest.Load()) - 1; want != nil && !want(d) {
			return
		}
		acked++
		if s.recv.Load() > 0 {
			delivered++
		}
	})
	return acked, delivered
}
