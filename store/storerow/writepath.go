package storerow

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/livehooks/livehooks"
)

// What a store's write path keeps in memory between transactions (callback
// matches, recording state) and the deliveries it builds, the same for every
// backend.

// EventMask returns the bit of an event type in a subscription mask: bit i
// stands for livehooks.EventTypes[i]; an unknown type has none.
func EventMask(et livehooks.EventType) uint8 {
	for i, e := range livehooks.EventTypes {
		if e == et {
			return 1 << i
		}
	}
	return 0
}

// SubscriptionMask returns the mask of a subscription column.
func SubscriptionMask(column string) uint8 {
	var m uint8
	for _, et := range SplitSubscription(column) {
		m |= EventMask(et)
	}
	return m
}

// NewDelivery returns a pending delivery of e to a config, created at; the
// store fills in its ID.
func NewDelivery(webhookID, configID string, e *livehooks.Event, at time.Time) *livehooks.Delivery {
	return &livehooks.Delivery{
		WebhookID:   webhookID,
		ProjectID:   e.ProjectID,
		ConfigID:    configID,
		Lane:        livehooks.LaneKey(configID, e.Stream),
		EventID:     e.ID,
		EventType:   e.Type,
		Stream:      e.Stream,
		Status:      livehooks.DeliveryPending,
		NextAttempt: at,
		CreatedAt:   at,
		UpdatedAt:   at,
		Event:       e,
	}
}

// MaxCached bounds a Cache: past it the cache starts again empty, which costs
// reads, never correctness.
const MaxCached = 100_000

// Cache is a bounded map that a write path reads instead of the database. Its
// generation changes when it is invalidated or starts again empty, so that an
// answer read from the database before is not stored after, and so that
// whoever filled it with every row knows when it no longer holds every row.
type Cache[K comparable, V any] struct {
	mu  sync.Mutex
	gen uint64
	m   map[K]V
}

// Gen returns the current generation: read it before reading what Put will
// store.
func (c *Cache[K, V]) Gen() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// Get returns the value of k.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

// Put stores v for k unless the cache was invalidated since generation gen,
// and reports whether it did.
func (c *Cache[K, V]) Put(k K, v V, gen uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return false
	}
	if _, ok := c.m[k]; !ok {
		c.room()
	}
	c.m[k] = v
	return true
}

// Update changes the value of k with fn, which gets the current value and
// whether there is one and returns the new value and whether to keep it.
func (c *Cache[K, V]) Update(k K, fn func(v V, ok bool) (V, bool)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.m[k]
	v, keep := fn(old, ok)
	switch {
	case !keep:
		delete(c.m, k)
	case ok:
		c.m[k] = v
	default:
		c.room()
		c.m[k] = v
	}
}

// room makes room for one more key: past MaxCached the cache starts again
// empty, in a new generation.
func (c *Cache[K, V]) room() {
	if c.m == nil {
		c.m = make(map[K]V)
	} else if len(c.m) >= MaxCached {
		c.gen++
		c.m = make(map[K]V)
	}
}

// Len returns the number of keys held.
func (c *Cache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// Delete forgets keys.
func (c *Cache[K, V]) Delete(keys ...K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		delete(c.m, k)
	}
}

// Invalidate forgets everything and starts a new generation.
func (c *Cache[K, V]) Invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.m = nil
}

// outcomeStatus is the status an outcome moves its delivery to.
var outcomeStatus = map[livehooks.Outcome]livehooks.DeliveryStatus{
	livehooks.OutcomeSucceeded: livehooks.DeliverySucceeded,
	livehooks.OutcomeRetry:     livehooks.DeliveryPending,
	livehooks.OutcomeFailed:    livehooks.DeliveryFailed,
	livehooks.OutcomeDead:      livehooks.DeliveryDead,
	livehooks.OutcomeGone:      livehooks.DeliveryFailed,
}

// OutcomeStatus returns the status an outcome moves its delivery to
// (pending again for a retry).
func OutcomeStatus(o livehooks.Outcome) livehooks.DeliveryStatus { return outcomeStatus[o] }

// CheckResults returns the EINVALID error of the first result that cannot be
// recorded: without a delivery, or of an unknown outcome.
func CheckResults(results []livehooks.Result) error {
	for _, r := range results {
		if r.Delivery == nil {
			return livehooks.Errorf(livehooks.EINVALID, "result without a delivery")
		}
		if _, ok := outcomeStatus[r.Outcome]; !ok {
			return livehooks.Errorf(livehooks.EINVALID, "unknown outcome %d", r.Outcome)
		}
	}
	return nil
}

// ResultLane returns the lane of a result's delivery.
func ResultLane(r livehooks.Result) string {
	if r.Delivery.Lane != "" {
		return r.Delivery.Lane
	}
	return livehooks.LaneKey(r.Delivery.ConfigID, r.Delivery.Stream)
}

// LastError is what the log keeps of a result as its delivery's last error:
// the attempt's error, then the reason of the outcome.
func LastError(r livehooks.Result) string {
	switch {
	case r.Reason == "":
		return r.Attempt.Error
	case r.Attempt.Error == "":
		return r.Reason
	}
	return r.Attempt.Error + "; " + r.Reason
}

// GoneReason is the reason a config is disabled for, when a result's outcome
// is OutcomeGone.
func GoneReason(r livehooks.Result) string {
	if r.Reason == "" {
		return "receiver answered 410 Gone"
	}
	return r.Reason
}

// Claimed is a lane a claim leased and when it fell due.
type Claimed struct {
	Lane   livehooks.Lane
	NextAt time.Time
}

// ClaimOrder returns the claimed lanes earliest due first (then by key), the
// order ClaimLanes promises.
func ClaimOrder(got []Claimed) []livehooks.Lane {
	slices.SortFunc(got, func(a, b Claimed) int {
		if c := a.NextAt.Compare(b.NextAt); c != 0 {
			return c
		}
		return strings.Compare(a.Lane.Key, b.Lane.Key)
	})
	lanes := make([]livehooks.Lane, len(got))
	for i, c := range got {
		lanes[i] = c.Lane
	}
	return lanes
}
