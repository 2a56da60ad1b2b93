package groupcommit_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/groupcommit"
)

// TestObserveReportsEveryEventAndDelivery: with Observe, effects name every
// stored event (those no config matches too) and every delivery created,
// including those an Apply or a Requeue created.
func TestObserveReportsEveryEventAndDelivery(t *testing.T) {
	store, _, _ := setup(t, nil)
	var mu sync.Mutex
	var events, created []string
	gc := groupcommit.New(store, groupcommit.Options{Node: "n1", Observe: true, OnCommit: func(effects []groupcommit.Effect) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range effects {
			for _, ev := range e.Events {
				events = append(events, ev.Stream)
			}
			for _, d := range e.Created {
				if d.ID == 0 {
					panic("a created delivery without its id")
				}
				created = append(created, d.Stream)
			}
		}
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { gc.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	unmatched := ev("nobody")
	unmatched.PublishDomain = "other.example.com"
	ds, err := gc.Enqueue(context.Background(), []*livehooks.Event{ev("a"), ev("a"), unmatched})
	if err != nil || len(ds) != 2 {
		t.Fatalf("enqueue: %v, %d deliveries", err, len(ds))
	}
	err = gc.Apply(context.Background(), nil, func(ctx context.Context, tx livehooks.OutboxTx, now time.Time) ([]*livehooks.Delivery, error) {
		return tx.Enqueue(ctx, "n1", now, []*livehooks.Event{ev("b")})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gc.Requeue(context.Background(), ds[:1]); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(events, " "); got != "a a nobody b" {
		t.Errorf("events %q", got)
	}
	if got := strings.Join(created, " "); got != "a a b a" {
		t.Errorf("created %q", got)
	}
}
