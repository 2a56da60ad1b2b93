package main

import (
	"strconv"
	"testing"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/store/postgres"
)

// TestPickSpreadsOrFollowsHome checks where the multi-node load sends a
// stream's requests: round-robin, never twice in a row to the same node and
// never to a node that is down; with -affinity, always to the home of the
// stream's lane among the nodes up.
func TestPickSpreadsOrFollowsHome(t *testing.T) {
	down := map[int]bool{}
	bases := []string{"http://a", "http://b", "http://c"}
	configs := []string{"c0", "c1"}
	p := newMultiPoster(bases, configs, 1, 50, func(i int) bool { return down[i] })
	for s := range 50 {
		e := benchEvent{stream: s, dest: s % 2}
		prev := p.pick(e)
		for range 5 {
			if n := p.pick(e); n == prev {
				t.Fatalf("stream %d went to node %d twice in a row", s, n)
			} else {
				prev = n
			}
		}
	}
	down[1] = true
	for s := range 50 {
		if n := p.pick(benchEvent{stream: s}); n == 1 {
			t.Fatalf("stream %d went to node 1, which is down", s)
		}
	}

	down[1] = false
	p.nodeIDs = []string{"node-1", "node-2", "node-3"}
	homes := map[int]int{}
	for s := range 50 {
		e := benchEvent{stream: s, dest: s % 2}
		lane := livehooks.LaneKey(configs[e.dest], "s"+strconv.Itoa(s))
		want := map[string]int{"node-1": 0, "node-2": 1, "node-3": 2}[postgres.LaneHome(lane, p.nodeIDs)]
		for range 3 {
			if n := p.pick(e); n != want {
				t.Fatalf("stream %d went to node %d, its lane's home is node %d", s, n, want)
			}
		}
		homes[want]++
		down[want] = true
		wantUp := map[string]int{"node-1": 0, "node-2": 1, "node-3": 2}[postgres.LaneHome(lane, upIDs(p.nodeIDs, down))]
		if n := p.pick(e); n != wantUp || n == want {
			t.Fatalf("stream %d, its home down: went to node %d, want %d", s, n, wantUp)
		}
		down[want] = false
	}
	if len(homes) != 3 {
		t.Errorf("50 streams' homes on %d of 3 nodes", len(homes))
	}
}

func upIDs(ids []string, down map[int]bool) []string {
	var up []string
	for i, id := range ids {
		if !down[i] {
			up = append(up, id)
		}
	}
	return up
}
