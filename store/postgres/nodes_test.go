package postgres

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/livehooks/livehooks"
)

// TestLaneHomeMatchesSQL checks that the database and Go agree on every
// lane's home: claims use one, hand-overs the other, and a lane on which
// they disagreed would go back and forth between two nodes.
func TestLaneHomeMatchesSQL(t *testing.T) {
	t.Parallel()
	url := testDatabase(t)
	openTest(t, url, Options{})
	conn := rawConn(t, url)
	nodeSets := [][]string{
		{"node-a"},
		{"node-a", "node-b", "node-c"},
		{"host-1/0.0.0.0:8080", "host-2/0.0.0.0:8080", "hôte-3/[::1]:8080", "節點-4", "Z", "a"},
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	var lanes []string
	for i := range 300 {
		stream := fmt.Sprintf("s%d", rnd.IntN(1e6))
		if i%5 == 0 {
			stream = "流-ストリーム-" + stream
		}
		lanes = append(lanes, livehooks.LaneKey(fmt.Sprintf("cfg%02d", i%7), stream))
	}
	q := `SELECT ` + homeSQL("$1::text", "$2")
	for _, nodes := range nodeSets {
		for _, lane := range lanes {
			var got string
			if err := conn.QueryRow(ctx, q, lane, nodes).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if want := LaneHome(lane, nodes); got != want {
				t.Fatalf("home of %q among %q: %q in SQL, %q in Go", lane, nodes, got, want)
			}
		}
	}
}

// TestLaneHomeSpreadsAndMovesLittle checks the two properties placement
// relies on: the lanes spread evenly, and a node joining takes lanes only
// for itself (none moves between the others).
func TestLaneHomeSpreadsAndMovesLittle(t *testing.T) {
	t.Parallel()
	const lanes = 3000
	three := []string{"node-a", "node-b", "node-c"}
	four := append(slices.Clone(three), "node-d")
	count := map[string]int{}
	moved := 0
	for i := range lanes {
		lane := livehooks.LaneKey("cfg", fmt.Sprintf("stream-%d", i))
		before, after := LaneHome(lane, three), LaneHome(lane, four)
		count[before]++
		if before != after {
			moved++
			if after != "node-d" {
				t.Fatalf("lane %s moved from %s to %s when node-d joined", lane, before, after)
			}
		}
	}
	for _, n := range three {
		if share := float64(count[n]) / lanes; share < 0.30 || share > 0.37 {
			t.Errorf("%s is home of %.1f%% of the lanes", n, 100*share)
		}
	}
	if share := float64(moved) / lanes; share < 0.22 || share > 0.28 {
		t.Errorf("%.1f%% of the lanes moved when a fourth node joined, want about 25%%", 100*share)
	}
}

// TestClaimHomeLanes checks which lanes a node claims with placement: free
// lanes whose home it is, not those of another live node however they are
// held, and a dead node's at once, before their leases expire.
func TestClaimHomeLanes(t *testing.T) {
	t.Parallel()
	url := testDatabase(t)
	db := openTest(t, url, Options{})
	// The nodes heartbeat through a store of their own: db, which enqueues,
	// knows no live node and creates each lane owned by the enqueuing node.
	hb := openTest(t, url, Options{})
	c := testConfig("p1", "live")
	if err := db.CreateCallback(ctx, c); err != nil {
		t.Fatal(err)
	}
	heartbeat := func(node string, ttl time.Duration) []string {
		t.Helper()
		live, _, err := hb.Heartbeat(ctx, node, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return live
	}
	heartbeat("A", time.Minute)
	live := heartbeat("B", time.Minute)
	if !slices.Equal(live, []string{"A", "B"}) {
		t.Fatalf("live nodes %q", live)
	}
	// Lanes created by C, which heartbeats too, and by D, which never does.
	heartbeat("C", time.Minute)
	enqueue := func(node string, streams ...string) []string {
		t.Helper()
		var events []*livehooks.Event
		for _, s := range streams {
			events = append(events, testEvent("live", s))
		}
		if err := db.Write(ctx, func(tx livehooks.OutboxTx) error {
			_, err := tx.Enqueue(ctx, node, time.Now(), events)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, s := range streams {
			keys = append(keys, livehooks.LaneKey(c.ID, s))
		}
		return keys
	}
	var streams []string
	for i := range 40 {
		streams = append(streams, fmt.Sprintf("s%02d", i))
	}
	ofC := enqueue("C", streams[:20]...)
	ofD := enqueue("D", streams[20:]...)
	claim := func(node string, live []string) []string {
		t.Helper()
		lanes, err := db.ClaimHomeLanes(ctx, node, live, time.Now(), time.Minute, 100)
		if err != nil {
			t.Fatal(err)
		}
		return laneKeys(lanes)
	}
	ab := []string{"A", "B"}
	if got := claim("A", ab); len(got) != 0 {
		t.Fatalf("A claimed %d lanes of live nodes within their leases", len(got))
	}
	if got := claim("E", ab); len(got) != 0 {
		t.Fatalf("E, not among the live nodes it named, claimed %q", got)
	}

	// C stops heartbeating: its lanes go to their homes among A and B, each
	// claimed once; D's stay (no heartbeat: its lease covers them).
	heartbeat("C", time.Millisecond)
	waitUntil(t, "C's heartbeat expired", 5*time.Second, func() bool { return !slices.Contains(heartbeat("A", time.Minute), "C") })
	gotA, gotB := claim("A", ab), claim("B", ab)
	for _, k := range gotA {
		if LaneHome(k, ab) != "A" {
			t.Errorf("A claimed %s, whose home is B", k)
		}
	}
	for _, k := range gotB {
		if LaneHome(k, ab) != "B" {
			t.Errorf("B claimed %s, whose home is A", k)
		}
	}
	if got := sortedCopy(append(gotA, gotB...)); !slices.Equal(got, sortedCopy(ofC)) {
		t.Fatalf("claimed %q, want C's lanes %q", got, ofC)
	}
	if len(gotA) == 0 || len(gotB) == 0 {
		t.Errorf("C's 20 lanes all went to one node: A %d, B %d", len(gotA), len(gotB))
	}

	// A node that leaves is dead at once.
	heartbeat("D", time.Minute)
	if err := hb.Leave(ctx, "D"); err != nil {
		t.Fatal(err)
	}
	got := sortedCopy(append(claim("A", ab), claim("B", ab)...))
	if !slices.Equal(got, sortedCopy(ofD)) {
		t.Fatalf("after D left, claimed %q, want %q", got, ofD)
	}

	// A free lane due now goes to its home only.
	if err := db.ReleaseLanes(ctx, "A"); err != nil {
		t.Fatal(err)
	}
	if err := db.ReleaseLanes(ctx, "B"); err != nil {
		t.Fatal(err)
	}
	if got := claim("A", []string{"A"}); len(got) != len(streams) {
		t.Fatalf("A alone claimed %d lanes, want %d", len(got), len(streams))
	}
	if got := claim("B", ab); len(got) != 0 {
		t.Fatalf("B claimed %d lanes that A holds", len(got))
	}
}

// TestNewLaneOwner checks the owner Enqueue should give a new lane: the
// enqueuing node when it is the lane's home or knows no live node, else none.
func TestNewLaneOwner(t *testing.T) {
	t.Parallel()
	url := testDatabase(t)
	db := openTest(t, url, Options{})
	other := openTest(t, url, Options{})
	lane := "cfg/stream"
	if o := owner(db.newLane(lane, "A")); o != "A" {
		t.Fatalf("owner before any heartbeat: %q", o)
	}
	if _, _, err := other.Heartbeat(ctx, "B", time.Minute); err != nil {
		t.Fatal(err)
	}
	live, _, err := db.Heartbeat(ctx, "A", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var homedA, homedB string
	for i := 0; homedA == "" || homedB == ""; i++ {
		l := fmt.Sprintf("cfg/s%d", i)
		if LaneHome(l, live) == "A" {
			homedA = l
		} else {
			homedB = l
		}
	}
	if o := owner(db.newLane(homedA, "A")); o != "A" {
		t.Errorf("owner of a lane homed at A, enqueued by A: %q", o)
	}
	if o := owner(db.newLane(homedB, "A")); o != "" {
		t.Errorf("owner of a lane homed at B, enqueued by A: %q", o)
	}
	if err := db.Leave(ctx, "A"); err != nil {
		t.Fatal(err)
	}
	if o := owner(db.newLane(homedB, "A")); o != "A" {
		t.Errorf("owner after A left: %q", o)
	}
}

// TestClaimHomeLanesPlan checks that a claim reads the lanes through their
// indexes, its own free lanes through lanes_home and the dead nodes' through
// the owner and home indexes, with plain index scans (claim turns bitmap
// scans off).
func TestClaimHomeLanesPlan(t *testing.T) {
	t.Parallel()
	url := testDatabase(t)
	openTest(t, url, Options{})
	conn := rawConn(t, url)
	if _, err := conn.Exec(ctx, `SET enable_seqscan = off; SET enable_bitmapscan = off`); err != nil {
		t.Fatal(err)
	}
	text := explain(t, conn, "claim home lanes", claimHomeLanesSQL, "n", time.Now(), time.Now(), 10, []string{"n", "m"})
	for _, idx := range []string{"lanes_home", "lanes_leased", "lanes_owner"} {
		if !strings.Contains(text, idx) {
			t.Errorf("claim does not use %s:\n%s", idx, text)
		}
	}
	if strings.Contains(text, "Seq Scan on lanes") {
		t.Errorf("claim scans the lanes table:\n%s", text)
	}
	if !strings.Contains(text, "Index Scan using lanes_home on lanes") {
		t.Errorf("claim does not read its own free lanes from lanes_home:\n%s", text)
	}
}

func laneKeys(lanes []livehooks.Lane) []string {
	keys := make([]string, len(lanes))
	for i, l := range lanes {
		keys[i] = l.Key
	}
	return keys
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestFreeLanesGoToTheirRecordedHome checks the home a free lane records: a
// lane that a node enqueues for another node's home, or defers (a retry, a
// hand-over), is claimed by that home and no other; once the home is dead,
// its home among the live nodes takes it; and a dead node's row stays as
// long as a free lane names it.
func TestFreeLanesGoToTheirRecordedHome(t *testing.T) {
	t.Parallel()
	url := testDatabase(t)
	dbA := openTest(t, url, Options{})
	dbB := openTest(t, url, Options{})
	conn := rawConn(t, url)
	c := testConfig("p1", "live")
	if err := dbA.CreateCallback(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, _, err := dbB.Heartbeat(ctx, "B", time.Minute); err != nil {
		t.Fatal(err)
	}
	live, _, err := dbA.Heartbeat(ctx, "A", time.Minute)
	if err != nil || !slices.Equal(live, []string{"A", "B"}) {
		t.Fatalf("live %q (%v)", live, err)
	}
	var events []*livehooks.Event
	homedB := map[string]bool{}
	for i := range 40 {
		s := fmt.Sprintf("s%02d", i)
		events = append(events, testEvent("live", s))
		if k := livehooks.LaneKey(c.ID, s); LaneHome(k, live) == "B" {
			homedB[k] = true
		}
	}
	if len(homedB) == 0 || len(homedB) == 40 {
		t.Fatalf("%d of 40 lanes homed at B", len(homedB))
	}
	if err := dbA.Write(ctx, func(tx livehooks.OutboxTx) error {
		_, err := tx.Enqueue(ctx, "A", time.Now(), events)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	type row struct{ owner, home string }
	lanes := func() map[string]row {
		t.Helper()
		rows, err := conn.Query(ctx, `SELECT lane, COALESCE(owner, ''), home FROM lanes`)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]row{}
		var k string
		var r row
		if _, err := pgx.ForEachRow(rows, []any{&k, &r.owner, &r.home}, func() error { out[k] = r; return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for k, r := range lanes() {
		want := row{"A", "A"}
		if homedB[k] {
			want = row{"", "B"}
		}
		if r != want {
			t.Errorf("new lane %s: owner %q, home %q; want %q, %q", k, r.owner, r.home, want.owner, want.home)
		}
	}
	claim := func(db *DB, node string, live ...string) map[string]bool {
		t.Helper()
		got, err := db.ClaimHomeLanes(ctx, node, live, time.Now(), time.Minute, 100)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, l := range got {
			out[l.Key] = true
		}
		return out
	}
	if got := claim(dbA, "A", "A", "B"); len(got) != 0 {
		t.Fatalf("A claimed %d lanes recorded for B", len(got))
	}
	if got := claim(dbB, "B", "A", "B"); !maps.Equal(got, homedB) {
		t.Fatalf("B claimed %d lanes, want its %d", len(got), len(homedB))
	}

	// B defers its lanes (retries, say): they stay recorded for B, which
	// alone claims them back.
	if err := dbB.Write(ctx, func(tx livehooks.OutboxTx) error {
		for k := range homedB {
			if _, err := tx.Defer(ctx, "B", k, time.Now()); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for k := range homedB {
		if r := lanes()[k]; r != (row{"", "B"}) {
			t.Fatalf("deferred lane %s: owner %q, home %q", k, r.owner, r.home)
		}
	}
	if got := claim(dbA, "A", "A", "B"); len(got) != 0 {
		t.Fatalf("A claimed %d lanes deferred for B", len(got))
	}

	// B dies. Its row outlives the hour after which a dead node's row goes,
	// as long as free lanes name it; A, now the home of every lane, takes
	// them.
	if _, err := conn.Exec(ctx, `UPDATE nodes SET expires_at = now() - interval '2 hours' WHERE node = 'B'`); err != nil {
		t.Fatal(err)
	}
	if live, _, err := dbA.Heartbeat(ctx, "A", time.Minute); err != nil || !slices.Equal(live, []string{"A"}) {
		t.Fatalf("live %q (%v)", live, err)
	}
	var rows int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM nodes WHERE node = 'B'`).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("B's row: %d (%v), want kept while free lanes name it", rows, err)
	}
	if got := claim(dbA, "A", "A"); !maps.Equal(got, homedB) {
		t.Fatalf("A claimed %d of dead B's %d lanes", len(got), len(homedB))
	}
	if _, _, err := dbA.Heartbeat(ctx, "A", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM nodes WHERE node = 'B'`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("B's row: %d (%v), want gone once no lane names it", rows, err)
	}
}

// TestIngestHome checks where a node sends an ingest: to the home of its
// events' lanes, at the URL that node advertised with its heartbeat; nowhere
// (ingest here) when that is this node, a node that advertised no URL,
// several nodes, or when the config is not in memory yet.
func TestIngestHome(t *testing.T) {
	t.Parallel()
	url := testDatabase(t)
	stores := map[string]*DB{
		"A": openTest(t, url, Options{AdvertiseURL: "http://a.example:8080"}),
		"B": openTest(t, url, Options{AdvertiseURL: "http://b.example:8080"}),
		"C": openTest(t, url, Options{}),
	}
	dbA := stores["A"]
	c := testConfig("p1", "live")
	if err := dbA.CreateCallback(ctx, c); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"B", "C", "A"} {
		if _, _, err := stores[n].Heartbeat(ctx, n, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	live := []string{"A", "B", "C"}
	ev := func(app, stream string) *livehooks.Event { return testEvent(app, stream) }
	if n, u := dbA.IngestHome("A", []*livehooks.Event{ev("live", "s00")}); n != "" || u != "" {
		t.Fatalf("config not in memory yet: %q %q", n, u)
	}
	if err := dbA.Write(ctx, func(tx livehooks.OutboxTx) error {
		_, err := tx.Enqueue(ctx, "A", time.Now(), []*livehooks.Event{ev("live", "warm")})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	byHome := map[string][]string{}
	for i := range 60 {
		s := fmt.Sprintf("s%02d", i)
		home := LaneHome(livehooks.LaneKey(c.ID, s), live)
		byHome[home] = append(byHome[home], s)
		n, u := dbA.IngestHome("A", []*livehooks.Event{ev("live", s), ev("other-app", "x")})
		want := map[string][2]string{"A": {}, "B": {"B", "http://b.example:8080"}, "C": {}}[home]
		if [2]string{n, u} != want {
			t.Errorf("stream %s homed at %s: %q %q, want %q", s, home, n, u, want)
		}
	}
	if len(byHome["A"]) == 0 || len(byHome["B"]) == 0 || len(byHome["C"]) == 0 {
		t.Fatalf("60 streams' homes: %v", byHome)
	}
	if n, _ := dbA.IngestHome("A", []*livehooks.Event{ev("live", byHome["B"][0]), ev("live", byHome["B"][1])}); n != "B" {
		t.Errorf("two streams homed at B: %q", n)
	}
	if n, _ := dbA.IngestHome("A", []*livehooks.Event{ev("live", byHome["B"][0]), ev("live", byHome["C"][0])}); n != "" {
		t.Errorf("streams homed at B and C: %q", n)
	}
	if n, u := stores["C"].IngestHome("C", []*livehooks.Event{ev("live", byHome["B"][0])}); n != "" || u != "" {
		t.Errorf("from C, whose configs are not in memory: %q %q", n, u)
	}
}

// owner is the owner half of newLane's answer.
func owner(owner, _ string) string { return owner }
