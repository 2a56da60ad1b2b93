package groupcommit_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/groupcommit"
)

// networkStore stands for a store behind a network (it is no
// DeferredSyncer): each transaction takes a while, and the store notes which
// streams the transactions in flight touch.
type networkStore struct {
	livehooks.Outbox // only Write is used

	mu       sync.Mutex
	inflight int
	max      int
	touched  map[string]int // stream → transactions in flight touching it
	lone     int            // transactions in flight that must be alone
	errs     []string
	order    map[string][]int // stream → the sequence numbers committed, in commit order
}

type txNotes struct {
	streams []string
	seqs    []int
	lone    bool
}

type notingTx struct {
	livehooks.OutboxTx
	notes *txNotes
}

func (s *networkStore) Write(ctx context.Context, fn func(tx livehooks.OutboxTx) error) error {
	notes := &txNotes{}
	if err := fn(notingTx{notes: notes}); err != nil {
		return err
	}
	s.mu.Lock()
	s.inflight++
	s.max = max(s.max, s.inflight)
	if notes.lone {
		s.lone++
	}
	if s.lone > 0 && s.inflight > 1 {
		s.errs = append(s.errs, fmt.Sprintf("a transaction that must commit alone had %d in flight", s.inflight))
	}
	for _, st := range notes.streams {
		s.touched[st]++
		if s.touched[st] > 1 {
			s.errs = append(s.errs, "two transactions in flight touch stream "+st)
		}
	}
	s.mu.Unlock()

	time.Sleep(3 * time.Millisecond) // the round trip

	s.mu.Lock()
	for i, st := range notes.streams {
		s.touched[st]--
		s.order[st] = append(s.order[st], notes.seqs[i])
	}
	if notes.lone {
		s.lone--
	}
	s.inflight--
	s.mu.Unlock()
	return nil
}

// TestParallelKeepsEachStreamInOrder runs writers of eight streams, each
// waiting for its previous write, and writers whose streams are unknown,
// through a committer with two transactions in flight: two do commit at
// once, never two that touch one stream, a write of unknown streams commits
// alone, each stream's writes commit in the order they were made, and
// OnCommit is never called twice at once.
func TestParallelKeepsEachStreamInOrder(t *testing.T) {
	s := &networkStore{touched: map[string]int{}, order: map[string][]int{}}
	var inCommit, overlapped atomic.Int32
	gc := groupcommit.New(s, groupcommit.Options{Node: "n1", Parallel: 2, OnCommit: func([]groupcommit.Effect) {
		if inCommit.Add(1) > 1 {
			overlapped.Add(1)
		}
		time.Sleep(100 * time.Microsecond)
		inCommit.Add(-1)
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { gc.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	const streams, writes = 8, 40
	var wg sync.WaitGroup
	for i := range streams {
		stream := fmt.Sprintf("stream-%d", i)
		wg.Go(func() {
			for seq := range writes {
				err := gc.Apply(ctx, []string{stream}, func(_ context.Context, tx livehooks.OutboxTx, _ time.Time) ([]*livehooks.Delivery, error) {
					n := tx.(notingTx).notes
					n.streams, n.seqs = append(n.streams, stream), append(n.seqs, seq)
					return nil, nil
				})
				if err != nil {
					t.Errorf("%s %d: %v", stream, seq, err)
					return
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for range writes / 4 {
				err := gc.Apply(ctx, nil, func(_ context.Context, tx livehooks.OutboxTx, _ time.Time) ([]*livehooks.Delivery, error) {
					tx.(notingTx).notes.lone = true
					return nil, nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	wg.Wait()

	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.errs {
		t.Error(e)
	}
	if s.max != 2 {
		t.Errorf("at most %d transactions were in flight at once, want 2", s.max)
	}
	for i := range streams {
		stream := fmt.Sprintf("stream-%d", i)
		got := s.order[stream]
		if len(got) != writes || !slices.IsSorted(got) {
			t.Errorf("%s committed %v, want 0…%d in order", stream, got, writes-1)
		}
	}
	if n := overlapped.Load(); n > 0 {
		t.Errorf("OnCommit ran %d times while another call was running", n)
	}
}

// TestParallelRoutesByStream checks which operations may share the
// queues: Enqueue and Record of one stream do, a 410 or several streams
// commit alone.
func TestParallelRoutesByStream(t *testing.T) {
	s := &networkStore{touched: map[string]int{}, order: map[string][]int{}}
	gc := groupcommit.New(s, groupcommit.Options{Node: "n1", Parallel: 4})
	for _, c := range []struct {
		name string
		op   func(ctx context.Context) error
		lone bool
	}{
		{"enqueue of one stream", func(ctx context.Context) error {
			_, err := gc.Enqueue(ctx, []*livehooks.Event{{Stream: "a"}, {Stream: "a"}})
			return err
		}, false},
		{"enqueue of two streams", func(ctx context.Context) error {
			_, err := gc.Enqueue(ctx, []*livehooks.Event{{Stream: "a"}, {Stream: "b"}})
			return err
		}, true},
		{"record", func(ctx context.Context) error {
			_, err := gc.Record(ctx, []livehooks.Result{{Delivery: &livehooks.Delivery{Lane: "c1/a/b", Stream: "a/b"}, Outcome: livehooks.OutcomeSucceeded}})
			return err
		}, false},
		{"record of a 410", func(ctx context.Context) error {
			_, err := gc.Record(ctx, []livehooks.Result{{Delivery: &livehooks.Delivery{Lane: "c1/a", Stream: "a"}, Outcome: livehooks.OutcomeGone}})
			return err
		}, true},
		{"defer", func(ctx context.Context) error { return gc.Defer(ctx, "c1/a", time.Now()) }, false},
		{"requeue", func(ctx context.Context) error {
			_, err := gc.Requeue(ctx, []*livehooks.Delivery{{Stream: "a"}})
			return err
		}, true},
	} {
		if got := groupcommit.CommitsAlone(gc, c.op); got != c.lone {
			t.Errorf("%s: commits alone %v, want %v", c.name, got, c.lone)
		}
	}
}
