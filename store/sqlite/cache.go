package sqlite

import (
	"sync"

	"github.com/livehooks/livehooks"
)

// The process is the only writer of its SQLite file, so what a transaction
// read or wrote stays true until this process writes it again: the write
// path keeps the callback matches and the streams' recording state in memory
// instead of reading them for every event.

type matchKey struct{ project, domain, app string }

// match is the config an event of a matchKey goes to; id is "" when none.
type match struct {
	id       string
	subs     uint8 // bit i: subscribed to livehooks.EventTypes[i]
	disabled bool
}

// maxCached bounds each cache: past it the cache starts again empty, which
// costs reads, never correctness.
const maxCached = 100_000

// configCache holds matches of one config generation; a config write bumps
// DB.configGen inside its transaction, which empties the cache.
type configCache struct {
	mu  sync.Mutex
	gen uint64
	m   map[matchKey]match
}

func (c *configCache) get(k matchKey, gen uint64) (match, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return match{}, false
	}
	m, ok := c.m[k]
	return m, ok
}

func (c *configCache) put(k matchKey, m match, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen || c.m == nil || len(c.m) >= maxCached {
		c.gen, c.m = gen, map[matchKey]match{}
	}
	c.m[k] = m
}

// streamCache holds the committed recording state of streams; a nil state
// means the stream has none. Only Write fills it, after its commit.
type streamCache struct {
	mu sync.Mutex
	m  map[livehooks.StreamKey]*livehooks.StreamState
}

func (c *streamCache) get(k livehooks.StreamKey) (*livehooks.StreamState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.m[k]
	return s, ok
}

// put stores a copy of s.
func (c *streamCache) put(k livehooks.StreamKey, s *livehooks.StreamState) {
	if s != nil {
		cp := *s
		s = &cp
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCached {
		c.m = map[livehooks.StreamKey]*livehooks.StreamState{}
	}
	c.m[k] = s
}

func (c *streamCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = nil
}
