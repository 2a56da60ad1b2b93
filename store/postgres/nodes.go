package postgres

import (
	"bytes"
	"context"
	"crypto/md5"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/livehooks/livehooks"
)

// Lanes are spread over the nodes that heartbeat (table nodes): each lane's
// home is the live node with the highest md5(lane + " " + node), rendezvous
// hashing, so that when a node joins or leaves only the lanes whose home it
// is or becomes move. homeSQL and LaneHome compute the same home, in the
// database for claims and in Go for the dispatcher's hand-overs and for
// new lanes; the bytes hashed are UTF-8 whatever the database's encoding.

// homeSQL is the expression of the home of lane among nodes (a text[]).
func homeSQL(lane, nodes string) string {
	return `(SELECT n FROM unnest(` + nodes + `::text[]) n
		ORDER BY md5(convert_to(` + lane + ` || ' ' || n, 'UTF8')) COLLATE "C" DESC, n COLLATE "C" DESC LIMIT 1)`
}

// LaneHome returns the home of lane among nodes ("" when there is none): the
// node that delivers it. A load balancer that sends a stream's ingest to the
// home of its lane keeps the stream's writes and deliveries on one node.
func LaneHome(lane string, nodes []string) string {
	var (
		best    string
		bestSum [md5.Size]byte
	)
	buf := make([]byte, 0, 128)
	for _, n := range nodes {
		buf = append(append(append(buf[:0], lane...), ' '), n...)
		sum := md5.Sum(buf)
		if c := bytes.Compare(sum[:], bestSum[:]); best == "" || c > 0 || c == 0 && n > best {
			best, bestSum = n, sum
		}
	}
	return best
}

// Home returns the node among live that should deliver lane.
func (db *DB) Home(lane string, live []string) string { return LaneHome(lane, live) }

// heartbeatSQL marks $1 alive for $2 µs, at the URL $3, and returns the
// live nodes, $1 included, each with the µs left until it expires and its
// URL. Rows of nodes dead for an hour, owning no lane and home to no free
// lane are deleted.
const heartbeatSQL = `WITH me AS (
		INSERT INTO nodes (node, seen_at, expires_at, url) VALUES ($1, now(), now() + $2 * interval '1 microsecond', $3)
		ON CONFLICT (node) DO UPDATE SET seen_at = excluded.seen_at, expires_at = excluded.expires_at, url = excluded.url
		RETURNING node
	), gone AS (
		DELETE FROM nodes WHERE expires_at < now() - interval '1 hour' AND node <> $1
			AND NOT EXISTS (SELECT 1 FROM lanes WHERE owner = nodes.node)
			AND NOT EXISTS (SELECT 1 FROM lanes WHERE owner IS NULL AND home = nodes.node)
	)
	SELECT node, floor(extract(epoch FROM expires_at - now()) * 1e6)::bigint, url FROM nodes WHERE expires_at >= now() AND node <> $1
	UNION ALL SELECT node, $2, $3 FROM me`

// A heartbeat need not survive a crash of the database server: the next one
// follows a second later. Without waiting for the WAL flush it stays quick
// however busy the disk is.
var beginHeartbeat = fmt.Sprintf("BEGIN; SET LOCAL lock_timeout = %d; SET LOCAL synchronous_commit = off", lockTimeout.Milliseconds())

// Heartbeat tells the other nodes that node is alive for the next ttl, by
// the database's clock, and returns the nodes alive now, node included, in
// byte order, and how long until the first of the others expires (0 when
// there is none): a heartbeat then finds it gone. Once ttl has passed
// without a new heartbeat, the other nodes take node for dead: its lanes go
// to the live nodes at once.
func (db *DB) Heartbeat(ctx context.Context, node string, ttl time.Duration) (live []string, next time.Duration, err error) {
	if !validText(node) || node == "" {
		return nil, 0, livehooks.Errorf(livehooks.EINVALID, "invalid node id")
	}
	start := time.Now()
	var urls map[string]string
	err = db.runTx(ctx, pgx.TxOptions{BeginQuery: beginHeartbeat}, func(tx pgx.Tx) error {
		live, next, urls = live[:0], 0, map[string]string{}
		rows, err := tx.Query(ctx, heartbeatSQL, node, ttl.Microseconds(), db.url)
		if err != nil {
			return err
		}
		var (
			n, url string
			left   int64
		)
		_, err = pgx.ForEachRow(rows, []any{&n, &left, &url}, func() error {
			live = append(live, n)
			if url != "" {
				urls[n] = url
			}
			if d := time.Duration(left) * time.Microsecond; n != node && (next == 0 || d < next) {
				next = max(d, time.Microsecond)
			}
			return nil
		})
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("postgres: heartbeat: %w", err)
	}
	slices.Sort(live)
	db.view.Store(&nodeView{nodes: live, urls: urls, until: start.Add(ttl)})
	return live, next, nil
}

// IngestHome returns the node that should ingest events, and the URL it
// advertised, when that is not self: the home, among the live nodes of the
// last heartbeat, of the lane of every event a config takes. It returns ""
// (ingest here) when the events go to several homes or none, when a config
// they need is not in memory yet, or when the home advertised no URL. The
// answer comes from memory and may be out of date (a config changed by
// another node, a node that just died): it only decides which node writes,
// which any node may do correctly.
func (db *DB) IngestHome(self string, events []*livehooks.Event) (node, url string) {
	v := db.view.Load()
	if v == nil || len(v.urls) == 0 || time.Now().After(v.until) {
		return "", ""
	}
	for _, e := range events {
		dc, ok := db.configs.Get(domainKey{e.ProjectID, e.PublishDomain})
		if !ok {
			return "", ""
		}
		m := dc.match(e.App)
		if !m.takes(e.Type) {
			continue // no delivery, no lane
		}
		switch h := LaneHome(livehooks.LaneKey(m.id, e.Stream), v.nodes); {
		case node == "":
			node = h
		case h != node:
			return "", ""
		}
	}
	if node == "" || node == self || v.urls[node] == "" {
		return "", ""
	}
	return node, v.urls[node]
}

// Leave tells the other nodes that node has stopped: they take whatever
// lane it still owns at once. A node leaves after it released its lanes.
func (db *DB) Leave(ctx context.Context, node string) error {
	if !validText(node) {
		return livehooks.Errorf(livehooks.EINVALID, "invalid node id")
	}
	db.view.Store(nil)
	if _, err := db.pool.Exec(ctx, `UPDATE nodes SET expires_at = now() - interval '1 microsecond' WHERE node = $1`, node); err != nil {
		return fmt.Errorf("postgres: leave: %w", err)
	}
	return nil
}

// homeOf returns the home of a new lane among the live nodes of this
// store's last heartbeat, or fallback (the enqueuing node) when there was
// none within its ttl.
func (db *DB) homeOf(lane, fallback string) string {
	v := db.view.Load()
	if v == nil || len(v.nodes) == 0 || time.Now().After(v.until) {
		return fallback
	}
	return LaneHome(lane, v.nodes)
}

// newLane returns the owner and the home that Enqueue gives a lane it
// creates. The owner is the enqueuing node when the lane's home is that node
// (or unknown), else "" for nobody (NULL), so that its home claims it when
// woken rather than the enqueuing node delivering it and handing it over
// afterwards. The home is the lane's home among the live nodes, "" when this
// store knows none.
func (db *DB) newLane(lane, node string) (owner, home string) {
	home = db.homeOf(lane, "")
	if home != "" && home != node {
		return "", home
	}
	return node, home
}

// nodeView is the live nodes of a store's last heartbeat, until it is
// stale, with the URLs they advertised.
type nodeView struct {
	nodes []string
	urls  map[string]string
	until time.Time
}

// claimHomeLanesSQL is claimLanesSQL for the lanes that node $1 should
// deliver among the live nodes $5, from five sources, each an index range:
//   - free lanes that record $1 as their home (lanes_home);
//   - free lanes of no known home (an empty home), whose home among $5 is $1;
//   - free lanes whose recorded home is a dead node (its heartbeat
//     expired), whose home among $5 is $1;
//   - leased lanes whose lease expired, whose home among $5 is $1;
//   - lanes leased by a dead node, whose home among $5 is $1.
//
// The home of a lane is hashed only for the last four, which are few: a
// claim costs its own lanes whatever the other nodes have waiting. A free
// lane recorded for a live node that is no longer its home (a node joined
// since) is claimed by that node, which hands it over. The dead nodes are
// read first, and their lanes through the indexes (UNION drops a lane found
// twice); with no dead node, their scans do not run. A live owner's lanes
// are never taken before their lease expires, and SKIP LOCKED passes over
// the lanes other transactions hold, as in claimLanesSQL.
var claimHomeLanesSQL = `WITH dead AS MATERIALIZED (
		SELECT array_agg(node) AS nodes FROM nodes WHERE expires_at < now()
	), free AS (
		SELECT lane, next_at FROM lanes WHERE owner IS NULL AND home = $1 AND next_at <= $3
		ORDER BY next_at LIMIT $4 FOR UPDATE SKIP LOCKED
	), homeless AS (
		SELECT lane, next_at FROM lanes l WHERE owner IS NULL AND home = '' AND next_at <= $3 AND ` + homeSQL("l.lane", "$5") + ` = $1
		ORDER BY next_at LIMIT $4 FOR UPDATE SKIP LOCKED
	), abandoned AS (
		SELECT lane, next_at FROM lanes l WHERE (SELECT nodes FROM dead) IS NOT NULL
			AND owner IS NULL AND home = ANY ((SELECT nodes FROM dead)::text[]) AND next_at <= $3 AND ` + homeSQL("l.lane", "$5") + ` = $1
		ORDER BY next_at LIMIT $4 FOR UPDATE SKIP LOCKED
	), expired AS (
		SELECT lane, next_at FROM lanes l WHERE owner IS NOT NULL AND lease_until < $3 AND next_at <= $3 AND ` + homeSQL("l.lane", "$5") + ` = $1
		ORDER BY lease_until LIMIT $4 FOR UPDATE SKIP LOCKED
	), orphaned AS (
		SELECT lane, next_at FROM lanes l WHERE (SELECT nodes FROM dead) IS NOT NULL
			AND owner = ANY ((SELECT nodes FROM dead)::text[]) AND next_at <= $3 AND ` + homeSQL("l.lane", "$5") + ` = $1
		ORDER BY next_at LIMIT $4 FOR UPDATE SKIP LOCKED
	), picked AS (
		SELECT lane FROM (
			SELECT lane, next_at FROM free UNION SELECT lane, next_at FROM homeless
			UNION SELECT lane, next_at FROM abandoned UNION SELECT lane, next_at FROM expired
			UNION SELECT lane, next_at FROM orphaned
		) due
		ORDER BY next_at, lane LIMIT $4
	)
	UPDATE lanes SET owner = $1, lease_until = $2 FROM picked WHERE lanes.lane = picked.lane
	RETURNING lanes.lane, lanes.config_id, lanes.next_at`

// ClaimHomeLanes is ClaimLanes for the lanes whose home among live is node,
// and which are free, or whose lease expired, or whose owner stopped
// heartbeating. live is the caller's view of the live nodes (its last
// Heartbeat): a node claims the lanes it would not hand over. Nothing is
// claimed when node is not in live.
func (db *DB) ClaimHomeLanes(ctx context.Context, node string, live []string, now time.Time, lease time.Duration, max int) ([]livehooks.Lane, error) {
	if max <= 0 || !slices.Contains(live, node) {
		return nil, nil
	}
	if !validText(node) || !validText(live...) {
		return nil, livehooks.Errorf(livehooks.EINVALID, "invalid node id")
	}
	return db.claim(ctx, claimHomeLanesSQL, node, ts(now.Add(lease)), ts(now), max, live)
}
