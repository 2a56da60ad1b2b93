package sqlite

import (
	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/store/storerow"
)

// The process is the only writer of its SQLite file, so what a transaction
// read or wrote stays true until this process writes it again: the write
// path keeps the callback matches and the streams' recording state in memory
// instead of reading them for every event.

type matchKey struct{ project, domain, app string }

// match is the config an event of a matchKey goes to; id is "" when none.
type match struct {
	id       string
	subs     uint8 // storerow.SubscriptionMask
	disabled bool
}

// caches are the write path's: config matches, emptied by every config write
// inside its transaction (the write connection is the writer's, so no group
// commit runs between the change and the invalidation), and the committed
// recording state of streams (nil: the stream has none), filled by Write
// after its commit and emptied when a Write fails.
type caches struct {
	configs storerow.Cache[matchKey, match]
	streams storerow.Cache[livehooks.StreamKey, *livehooks.StreamState]
}

// putStream caches a copy of s as the committed state of k.
func (c *caches) putStream(k livehooks.StreamKey, s *livehooks.StreamState, gen uint64) {
	if s != nil {
		cp := *s
		s = &cp
	}
	c.streams.Put(k, s, gen)
}
