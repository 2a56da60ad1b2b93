package storerow

import (
	"strconv"
	"testing"

	"github.com/livehooks/livehooks"
)

func TestSubscriptionMask(t *testing.T) {
	m := SubscriptionMask(JoinSubscription([]livehooks.EventType{livehooks.RecordStart, livehooks.RecordOver}))
	if m&EventMask(livehooks.RecordStart) == 0 || m&EventMask(livehooks.RecordOver) == 0 || m&EventMask(livehooks.RecordFileComplete) != 0 {
		t.Fatalf("mask %08b", m)
	}
	if EventMask("NOT_AN_EVENT") != 0 {
		t.Fatal("an unknown type has a bit")
	}
}

func TestResults(t *testing.T) {
	d := &livehooks.Delivery{ConfigID: "c", Stream: "s"}
	if err := CheckResults([]livehooks.Result{{Delivery: d}, {}}); livehooks.ErrorCode(err) != livehooks.EINVALID {
		t.Fatalf("result without a delivery: %v", err)
	}
	if err := CheckResults([]livehooks.Result{{Delivery: d, Outcome: 99}}); livehooks.ErrorCode(err) != livehooks.EINVALID {
		t.Fatalf("unknown outcome: %v", err)
	}
	if got := ResultLane(livehooks.Result{Delivery: d}); got != livehooks.LaneKey("c", "s") {
		t.Fatalf("lane %q", got)
	}
	for _, tc := range []struct{ err, reason, want string }{
		{"", "", ""}, {"timeout", "", "timeout"}, {"", "503: retry", "503: retry"}, {"timeout", "retry", "timeout; retry"},
	} {
		if got := LastError(livehooks.Result{Attempt: livehooks.Attempt{Error: tc.err}, Reason: tc.reason}); got != tc.want {
			t.Errorf("LastError(%q, %q) = %q, want %q", tc.err, tc.reason, got, tc.want)
		}
	}
	if OutcomeStatus(livehooks.OutcomeRetry) != livehooks.DeliveryPending || OutcomeStatus(livehooks.OutcomeGone) != livehooks.DeliveryFailed {
		t.Fatal("outcome statuses")
	}
	if GoneReason(livehooks.Result{}) == "" {
		t.Fatal("a 410 without a reason disables with none")
	}
}

func TestCache(t *testing.T) {
	var c Cache[string, int]
	gen := c.Gen()
	if !c.Put("a", 1, gen) {
		t.Fatal("put refused")
	}
	if v, ok := c.Get("a"); !ok || v != 1 {
		t.Fatalf("get %d %v", v, ok)
	}
	c.Invalidate()
	if _, ok := c.Get("a"); ok {
		t.Fatal("kept after Invalidate")
	}
	if c.Put("a", 2, gen) {
		t.Fatal("a value read before Invalidate stored after it")
	}
	c.Update("b", func(v int, ok bool) (int, bool) { return 3, true })
	c.Update("b", func(v int, ok bool) (int, bool) { return v + 1, ok })
	if v, _ := c.Get("b"); v != 4 {
		t.Fatalf("update: %d", v)
	}
	c.Delete("b")
	if c.Len() != 0 {
		t.Fatalf("len %d after delete", c.Len())
	}
	// Full: starts again empty, in a new generation.
	gen = c.Gen()
	for i := range MaxCached + 1 {
		c.Put(strconv.Itoa(i), i, c.Gen())
	}
	if c.Gen() == gen || c.Len() != 1 {
		t.Fatalf("after overflow: generation %d (was %d), %d keys", c.Gen(), gen, c.Len())
	}
}
