package livehooks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// DeliveryStatus is where a delivery is in its life.
type DeliveryStatus string

// Delivery statuses. Pending deliveries are waiting or in flight; the other
// three are final.
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliverySucceeded DeliveryStatus = "succeeded"
	DeliveryFailed    DeliveryStatus = "failed" // a non-retryable answer (4xx, 3xx) or the config went away
	DeliveryDead      DeliveryStatus = "dead"   // retries exhausted: dead-lettered
)

// Valid reports whether s is a known status.
func (s DeliveryStatus) Valid() bool {
	switch s {
	case DeliveryPending, DeliverySucceeded, DeliveryFailed, DeliveryDead:
		return true
	}
	return false
}

// Delivery is one event to be sent to one callback config.
//
// Deliveries of one (config, stream) form a lane: they are sent one at a time in
// id order, so a receiver sees a stream's events in the order they happened.
// A lane is owned by at most one node at a time (a lease), which is how several
// nodes share one database without breaking that order.
type Delivery struct {
	ID        int64  // increasing in ingest order
	WebhookID string // idempotency id sent as webhook-id; kept on retry and replay
	ProjectID string
	ConfigID  string
	Lane      string // LaneKey(ConfigID, Stream)
	EventID   string
	EventType EventType
	Stream    string

	Status      DeliveryStatus
	Attempts    int
	NextAttempt time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
	LastStatus  int    // HTTP status of the last attempt, 0 when none
	LastError   string // error of the last attempt
	LatencyMS   int64  // ingest to 2xx, for succeeded deliveries
	// LanePending is set by Enqueue and Requeue on the deliveries they return:
	// the lane's pending deliveries after the call, this one included. A
	// dispatcher that knows fewer has missed some (another node enqueued them).
	LanePending int
	// Due is set by Enqueue and Requeue on the deliveries they return: node
	// owns the lane and the delivery can be sent now. The others wait in the
	// store for whoever owns their lane.
	Due          bool
	Event        *Event // loaded with the delivery when the store is asked to
	AttemptsList []Attempt
}

// LaneKey returns the lane of a (config, stream).
func LaneKey(configID, stream string) string { return configID + "/" + stream }

// Attempt is one try at sending a delivery.
type Attempt struct {
	N          int // 1 for the first attempt
	At         time.Time
	StatusCode int           // 0 when no HTTP answer
	Latency    time.Duration // request start to answer
	Response   string        // first 1 KiB of the answer body
	Error      string        // network error, timeout, refusal; "" on an HTTP answer
}

// Outcome is what an attempt decided for its delivery.
type Outcome int

// Outcomes of an attempt.
const (
	OutcomeSucceeded Outcome = iota // 2xx
	OutcomeRetry                    // retry at Result.NextAttempt
	OutcomeFailed                   // give up now (4xx, 3xx)
	OutcomeDead                     // retries exhausted
	OutcomeGone                     // 410: fail and disable the config
)

// Result is the recorded outcome of one attempt.
type Result struct {
	Delivery    *Delivery
	Attempt     Attempt
	Outcome     Outcome
	NextAttempt time.Time // with OutcomeRetry
	Reason      string    // why, for the log (e.g. "config disabled: 410 Gone")
}

// LaneState tells a dispatcher what became of a lane after Record.
type LaneState struct {
	Lane string
	// Open is true while the lane still has pending deliveries and this node
	// still owns it (the dispatcher should go on sending it).
	Open bool
}

// Lane is a claimed lane: its key and the config its deliveries go to.
type Lane struct {
	Key      string
	ConfigID string
}

// DeliveryFilter selects deliveries in the delivery log.
type DeliveryFilter struct {
	ProjectID string
	ConfigID  string
	Status    DeliveryStatus // "" for any
	EventType EventType      // "" for any
	Stream    string         // "" for any
	Since     time.Time      // created at or after, zero for no bound
	Until     time.Time      // created before, zero for no bound
	// BeforeID keeps deliveries with smaller ids (keyset paging: the last id
	// of the previous page), 0 for no bound. A page then costs an index walk
	// from there, however deep it is.
	BeforeID int64
	// MinID keeps deliveries with ids at or above it, 0 for no bound.
	MinID int64
	// NoTotal skips counting the matches (FindDeliveries returns -1), which
	// costs a scan of every match.
	NoTotal bool
	Offset  int
	Limit   int
}

// OutboxTx is the part of the outbox that writes. A group committer runs many
// calls in one transaction, so that durable acknowledgement costs one fsync per
// batch, not one per event.
type OutboxTx interface {
	// StreamTx keeps recording state in the same transaction as the events
	// it produces.
	StreamTx
	// Enqueue stores events and one pending delivery for each event and each
	// config that matches it and subscribes to its type. A lane that did not
	// exist is created owned by node.
	//
	// A store may hold the writes of a transaction back and send them together
	// when fn returns (one statement per table, one round trip): what Enqueue,
	// Requeue and Record return is complete only when Write returns. Then each
	// returned delivery has its ID and LanePending, and Due tells whether node
	// owns its lane and should dispatch it now; deliveries in lanes owned
	// elsewhere or waiting for a retry, and events already stored (ingest is
	// idempotent per event ID), are not Due.
	Enqueue(ctx context.Context, node string, now time.Time, events []*Event) ([]*Delivery, error)
	// Requeue adds new pending deliveries (manual retry, replay) at the tail of
	// their lanes, with the WebhookID and event of the originals. Like
	// Enqueue's, its deliveries are complete when Write returns.
	Requeue(ctx context.Context, node string, now time.Time, ds []*Delivery) ([]*Delivery, error)
	// Record stores attempt results, moves deliveries to their new status and
	// returns each touched lane's state, one per result, in order, as of the
	// end of the transaction (filled in when Write returns). A retry releases
	// the lane until NextAttempt; the last final delivery of a lane deletes it.
	// A result for a delivery that is already final or deleted changes nothing
	// and reports its lane as not Open unless node still owns a lane with
	// pending deliveries.
	Record(ctx context.Context, node string, now time.Time, results []Result) ([]LaneState, error)
	// Defer releases a lane owned by node until t without an attempt (its
	// destination's breaker is open). The returned state is not Open.
	Defer(ctx context.Context, node, lane string, t time.Time) (LaneState, error)
}

// Outbox is the durable queue of deliveries: the transactional outbox between
// ingest and the dispatcher.
type Outbox interface {
	// Write runs fn in one transaction; fn's writes commit together or not at all.
	Write(ctx context.Context, fn func(tx OutboxTx) error) error

	// ClaimLanes leases up to max lanes that are due (next attempt at or before
	// now) and not leased by a live node, to node until now+lease.
	ClaimLanes(ctx context.Context, node string, now time.Time, lease time.Duration, max int) ([]Lane, error)
	// RenewLeases extends every lease node holds to until.
	RenewLeases(ctx context.Context, node string, until time.Time) error
	// ReleaseLanes gives up node's leases (graceful shutdown, or a restart of
	// the same node), making its lanes claimable at once.
	ReleaseLanes(ctx context.Context, node string) error
	// LaneDeliveries returns up to limit pending deliveries of a lane with ids
	// above afterID, in id order, with their events.
	LaneDeliveries(ctx context.Context, lane string, afterID int64, limit int) ([]*Delivery, error)

	// FindDeliveries returns a page of the delivery log and the number of matches,
	// newest first.
	FindDeliveries(ctx context.Context, f DeliveryFilter) ([]*Delivery, int, error)
	// FindDelivery returns one delivery of a project with its attempts and event.
	FindDelivery(ctx context.Context, projectID string, id int64) (*Delivery, error)
	// FindEvents returns the events of a config's domain and app ingested in
	// [since, until), oldest first, with IngestedAt set, for replay; at most
	// limit.
	FindEvents(ctx context.Context, c *CallbackConfig, since, until time.Time, limit int) ([]*Event, error)
	// PendingCount returns the number of pending deliveries.
	PendingCount(ctx context.Context) (int64, error)
	// Purge deletes final deliveries, their attempts and events no longer
	// referenced, updated before t; at most limit deliveries per call.
	Purge(ctx context.Context, before time.Time, limit int) (int, error)
}

// Store is everything a backend (SQLite, PostgreSQL) provides.
type Store interface {
	CallbackStore
	Outbox
	DomainStore
	FileJobStore
	RecordingLog
	// Ping checks that the store can be reached (readiness).
	Ping(ctx context.Context) error
	Close() error
}

// SendRequest is one attempt at sending a callback.
type SendRequest struct {
	URL       string
	Key       string // "" for unsigned callbacks
	SignType  string
	WebhookID string
	Event     *Event
	N         int // attempt number, from 1
}

// SendResult is what an attempt got back. Failures are described in the
// Attempt (status 0 and Error when there was no HTTP answer).
type SendResult struct {
	Attempt    Attempt
	RetryAfter time.Duration // from a Retry-After header
	Body       []byte        // the callback body that was sent
}

// Sender signs and posts one callback.
type Sender interface {
	Send(ctx context.Context, r SendRequest) SendResult
}

// Ingester takes recording events from a source and acknowledges them once
// they and their deliveries are committed.
type Ingester interface {
	Ingest(ctx context.Context, events []*Event) error
}

// WebhookID returns the idempotency id of an event's deliveries to a config:
// the same for every attempt, manual retry and replay, so receivers can dedupe.
func WebhookID(eventID, configID string) string {
	sum := sha256.Sum256([]byte(eventID + "/" + configID))
	return "msg_" + hex.EncodeToString(sum[:16])
}
