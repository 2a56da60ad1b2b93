package delivery_test

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/delivery"
	"github.com/livehooks/livehooks/store/sqlite"
)

const key = "abcdefghij0123456789ABCDEFGHIJ0123456789"

// TestSignedDelivery checks both auth_sign types and the Standard Webhooks
// headers against an independent computation.
func TestSignedDelivery(t *testing.T) {
	t.Parallel()
	for _, signType := range []string{livehooks.SignHMACSHA256, livehooks.SignMD5} {
		t.Run(signType, func(t *testing.T) {
			h := newHarness(t, harnessOptions{})
			rc := newReceiver(t, nil)
			c := h.config(rc.URL+"/cb", func(c *livehooks.CallbackConfig) { c.Key, c.SignType = key, signType })
			e := event("cam1", livehooks.RecordFileComplete, "t1")
			e.DownloadURL, e.PlayURL = "https://cdn.example.com/a.flv", "https://play.example.com/live/cam1.flv"
			before := time.Now().Unix()
			h.ingest(e)
			waitFor(t, "the callback", 5*time.Second, func() bool { return len(rc.got()) == 1 })
			req := rc.got()[0]
			var m map[string]any
			if err := json.Unmarshal(req.body, &m); err != nil {
				t.Fatal(err)
			}
			ts := int64(m["auth_timestamp"].(float64))
			if ts < before+299 || ts > time.Now().Unix()+301 {
				t.Fatalf("auth_timestamp %d is not send time + 300 s", ts)
			}
			var want string
			if signType == livehooks.SignMD5 {
				sum := md5.Sum([]byte(key + strconv.FormatInt(ts, 10)))
				want = hex.EncodeToString(sum[:])
			} else {
				mac := hmac.New(sha256.New, []byte(key))
				mac.Write([]byte(strconv.FormatInt(ts, 10) + "RECORD_FILE_COMPLETE" + "push.example.com" + "live" + "cam1" + e.DownloadURL + e.PlayURL))
				want = hex.EncodeToString(mac.Sum(nil))
			}
			if m["auth_sign"] != want {
				t.Fatalf("auth_sign = %v, want %s", m["auth_sign"], want)
			}
			id, wts := req.header.Get("webhook-id"), req.header.Get("webhook-timestamp")
			if id != livehooks.WebhookID(e.ID, c.ID) {
				t.Fatalf("webhook-id = %q", id)
			}
			mac := hmac.New(sha256.New, []byte(key))
			mac.Write([]byte(id + "." + wts + "." + string(req.body)))
			if got := req.header.Get("webhook-signature"); got != "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
				t.Fatalf("webhook-signature = %q", got)
			}
			if req.header.Get("Content-Type") != "application/json" {
				t.Fatalf("content type %q", req.header.Get("Content-Type"))
			}
		})
	}
}

func TestUnsignedDeliveryHasNoSignature(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	rc := newReceiver(t, nil)
	h.config(rc.URL, nil)
	h.ingest(event("cam1", livehooks.RecordStart, "t1"))
	waitFor(t, "the callback", 5*time.Second, func() bool { return len(rc.got()) == 1 })
	req := rc.got()[0]
	if strings.Contains(string(req.body), "auth_sign") || req.header.Get("webhook-signature") != "" || req.header.Get("webhook-id") == "" {
		t.Fatalf("unsigned callback: %s %v", req.body, req.header)
	}
}

// TestSubscriptionAndMatching: exact app wins over `*`, unsubscribed types
// are not sent, other domains go nowhere.
func TestSubscriptionAndMatching(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	exact, wild := newReceiver(t, nil), newReceiver(t, nil)
	h.config(exact.URL, func(c *livehooks.CallbackConfig) {
		c.NotifyEventSubscription = []livehooks.EventType{livehooks.RecordOver}
	})
	h.config(wild.URL, func(c *livehooks.CallbackConfig) { c.App = "*" })
	h.ingest(event("s", livehooks.RecordStart, "t"), event("s", livehooks.RecordOver, "t"))
	other := event("s", livehooks.RecordOver, "t")
	other.App = "other"
	h.ingest(other)
	elsewhere := event("s", livehooks.RecordOver, "t")
	elsewhere.PublishDomain = "other.example.com"
	h.ingest(elsewhere)
	waitFor(t, "callbacks", 5*time.Second, func() bool { return len(exact.got()) == 1 && len(wild.got()) == 1 })
	time.Sleep(100 * time.Millisecond)
	if !strings.Contains(string(exact.got()[0].body), `"RECORD_OVER"`) || !strings.Contains(string(wild.got()[0].body), `"app":"other"`) {
		t.Fatalf("exact got %s; wildcard got %s", exact.got()[0].body, wild.got()[0].body)
	}
	if len(exact.got()) != 1 || len(wild.got()) != 1 {
		t.Fatalf("extra callbacks: %d %d", len(exact.got()), len(wild.got()))
	}
}

// TestRetriesWithBackoff drives retries with an injected clock: the delays
// follow the policy (full jitter with Rand fixed at 0.5), and Retry-After
// overrides a shorter backoff.
func TestRetriesWithBackoff(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	policy := delivery.Policy{Base: 2 * time.Second, Cap: time.Minute, Window: time.Hour, MaxRetryAfter: time.Hour, Rand: func() float64 { return 0.5 }}
	h := newHarness(t, harnessOptions{clock: clock, policy: policy})
	rc := newReceiver(t, func(n int, r *http.Request) (int, http.Header) {
		switch n {
		case 1:
			return 500, nil
		case 2:
			return 503, nil
		case 3:
			return 429, http.Header{"Retry-After": {"120"}}
		}
		return 200, nil
	})
	c := h.config(rc.URL, nil)
	start := clock.Now()
	h.ingest(event("cam1", livehooks.RecordStart, "t1"))

	// Each retry waits exactly its delay: not a moment before.
	for i, delay := range []time.Duration{time.Second, 2 * time.Second, 120 * time.Second} {
		waitFor(t, fmt.Sprintf("attempt %d", i+1), 5*time.Second, func() bool {
			ds := h.deliveries(c)
			return len(ds) == 1 && ds[0].Attempts == i+1
		})
		d := h.deliveries(c)[0]
		if d.Status != livehooks.DeliveryPending || !d.NextAttempt.Equal(clock.Now().Add(delay)) {
			t.Fatalf("after attempt %d: status %s, next %v, want now+%v", i+1, d.Status, d.NextAttempt.Sub(clock.Now()), delay)
		}
		clock.Advance(delay - time.Millisecond)
		h.dispatcher.Wake()
		time.Sleep(60 * time.Millisecond)
		if n := len(rc.got()); n != i+1 {
			t.Fatalf("attempt %d came %v early", i+2, time.Millisecond)
		}
		clock.Advance(time.Millisecond)
		h.dispatcher.Wake()
	}
	waitFor(t, "success", 5*time.Second, func() bool { return h.deliveries(c)[0].Status == livehooks.DeliverySucceeded })
	d, err := h.store.FindDelivery(context.Background(), h.project, h.deliveries(c)[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	var codes []int
	for _, a := range d.AttemptsList {
		codes = append(codes, a.StatusCode)
	}
	if fmt.Sprint(codes) != "[500 503 429 200]" || d.Attempts != 4 {
		t.Fatalf("attempts %v", codes)
	}
	if !clock.Now().Equal(start.Add(123 * time.Second)) {
		t.Fatalf("clock moved %v", clock.Now().Sub(start))
	}
	// The webhook-id is the same on every attempt.
	ids := map[string]bool{}
	for _, r := range rc.got() {
		ids[r.header.Get("webhook-id")] = true
	}
	if len(ids) != 1 {
		t.Fatalf("webhook ids %v", ids)
	}
}

func TestBackoffIsFullJitterAndCapped(t *testing.T) {
	p := delivery.Policy{Base: time.Second, Cap: 10 * time.Second}
	for _, tc := range []struct {
		n    int
		r    float64
		want time.Duration
	}{{1, 0.999, 999 * time.Millisecond}, {1, 0, 0}, {2, 0.5, time.Second}, {4, 1, 8 * time.Second}, {5, 1, 10 * time.Second}, {80, 0.5, 5 * time.Second}} {
		p.Rand = func() float64 { return tc.r }
		if got := p.Backoff(tc.n); got != tc.want {
			t.Errorf("Backoff(%d) with rand %v = %v, want %v", tc.n, tc.r, got, tc.want)
		}
	}
}

func TestRetryWindowDeadLetters(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	policy := delivery.Policy{Base: time.Minute, Cap: time.Hour, Window: 90 * time.Second, MaxRetryAfter: time.Hour, Rand: func() float64 { return 1 }}
	h := newHarness(t, harnessOptions{clock: clock, policy: policy})
	rc := newReceiver(t, func(int, *http.Request) (int, http.Header) { return 502, nil })
	c := h.config(rc.URL, nil)
	h.ingest(event("cam1", livehooks.RecordStart, "t1"))
	waitFor(t, "first attempt", 5*time.Second, func() bool { return h.deliveries(c)[0].Attempts == 1 })
	clock.Advance(time.Minute)
	h.dispatcher.Wake()
	// Second attempt fails; the next would be after the window: dead.
	waitFor(t, "dead letter", 5*time.Second, func() bool { return h.deliveries(c)[0].Status == livehooks.DeliveryDead })
	if d := h.deliveries(c)[0]; d.Attempts != 2 {
		t.Fatalf("attempts %d", d.Attempts)
	}
}

func TestNonRetryableAnswers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	redirected := newReceiver(t, nil)
	cases := map[string]struct {
		status int
		header http.Header
		want   livehooks.DeliveryStatus
	}{
		"400":      {400, nil, livehooks.DeliveryFailed},
		"404":      {404, nil, livehooks.DeliveryFailed},
		"302":      {302, http.Header{"Location": {redirected.URL}}, livehooks.DeliveryFailed},
		"201":      {201, nil, livehooks.DeliverySucceeded},
		"204":      {204, nil, livehooks.DeliverySucceeded},
		"410 gone": {410, nil, livehooks.DeliveryFailed},
	}
	for name, tc := range cases {
		rc := newReceiver(t, func(int, *http.Request) (int, http.Header) { return tc.status, tc.header })
		domain := strings.ReplaceAll(name, " ", "") + ".example.com"
		c := h.config(rc.URL, func(c *livehooks.CallbackConfig) { c.PublishDomain = domain })
		e := event("cam1", livehooks.RecordStart, "t1")
		e.PublishDomain = domain
		h.ingest(e)
		waitFor(t, name, 5*time.Second, func() bool {
			ds := h.deliveries(c)
			return len(ds) == 1 && ds[0].Status == tc.want
		})
		if d := h.deliveries(c)[0]; d.Attempts != 1 || d.LastStatus != tc.status {
			t.Fatalf("%s: attempts %d, status %d", name, d.Attempts, d.LastStatus)
		}
		if tc.status == 410 {
			got, err := h.store.FindCallbackByID(context.Background(), h.project, c.ID)
			if err != nil || got.DisabledReason == "" {
				t.Fatalf("410 did not disable the config: %v %+v", err, got)
			}
			// A disabled config gets nothing more.
			e2 := event("cam2", livehooks.RecordStart, "t2")
			e2.PublishDomain = domain
			h.ingest(e2)
			time.Sleep(100 * time.Millisecond)
			if n := len(rc.got()); n != 1 {
				t.Fatalf("disabled config got %d callbacks", n)
			}
		}
	}
	if len(redirected.got()) != 0 {
		t.Fatal("a redirect was followed")
	}
}

// TestOrderingUnderRetries: per stream, callbacks arrive in event order even
// when the receiver fails often; streams do not wait for each other.
func TestOrderingUnderRetries(t *testing.T) {
	t.Parallel()
	policy := delivery.Policy{Base: 20 * time.Millisecond, Cap: 50 * time.Millisecond, Window: time.Hour, MaxRetryAfter: time.Second}
	h := newHarness(t, harnessOptions{policy: policy})
	var mu sync.Mutex
	delivered := map[string][]int{}
	calls := 0
	rc := newReceiver(t, func(n int, r *http.Request) (int, http.Header) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls%3 == 0 {
			return 500, nil
		}
		return 200, nil
	})
	// The receiver records what it accepted, in order.
	inner := rc.respond
	rc.respond = func(n int, r *http.Request) (int, http.Header) {
		status, hdr := inner(n, r)
		if status == 200 {
			reqs := rc.got()
			var m map[string]any
			_ = json.Unmarshal(reqs[n-1].body, &m)
			seq, _ := strconv.Atoi(strings.TrimPrefix(m["task_id"].(string), "seq"))
			mu.Lock()
			delivered[m["stream"].(string)] = append(delivered[m["stream"].(string)], seq)
			mu.Unlock()
		}
		return status, hdr
	}
	h.config(rc.URL, nil)
	const streams, perStream = 5, 20
	for i := range perStream {
		var batch []*livehooks.Event
		for s := range streams {
			batch = append(batch, event(fmt.Sprintf("s%d", s), livehooks.RecordStart, fmt.Sprintf("seq%d", i)))
		}
		h.ingest(batch...)
	}
	waitFor(t, "every delivery", 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		total := 0
		for _, seqs := range delivered {
			total += len(seqs)
		}
		return total >= streams*perStream
	})
	mu.Lock()
	defer mu.Unlock()
	for s, seqs := range delivered {
		if !sort.IntsAreSorted(seqs) || len(seqs) != perStream {
			t.Fatalf("stream %s delivered out of order or with duplicates: %v", s, seqs)
		}
	}
}

// TestIsolation: a receiver that hangs until the timeout does not delay the
// healthy one.
func TestIsolation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{timeout: 2 * time.Second, perDest: 4})
	release := make(chan struct{})
	defer close(release)
	hanging := newReceiver(t, func(int, *http.Request) (int, http.Header) {
		<-release
		return 200, nil
	})
	healthy := newReceiver(t, nil)
	h.config(hanging.URL, func(c *livehooks.CallbackConfig) { c.App = "slow" })
	h.config(healthy.URL, nil)
	// Many streams to the hanging receiver, more than its concurrency limit.
	for i := range 50 {
		e := event(fmt.Sprintf("slow%d", i), livehooks.RecordStart, "t")
		e.App = "slow"
		h.ingest(e)
	}
	var worst time.Duration
	for i := range 30 {
		start := time.Now()
		h.ingest(event(fmt.Sprintf("fast%d", i), livehooks.RecordStart, "t"))
		waitFor(t, "healthy callback", 5*time.Second, func() bool { return len(healthy.got()) == i+1 })
		worst = max(worst, time.Since(start))
	}
	if worst > 500*time.Millisecond {
		t.Fatalf("healthy receiver's worst latency %v while another hangs", worst)
	}
	t.Logf("healthy worst ingest-to-receipt latency: %v", worst)
}

// TestBreakerOpensAndRecovers: after consecutive failures a destination's
// lanes go back to the store until the breaker lets a probe through.
func TestBreakerOpensAndRecovers(t *testing.T) {
	t.Parallel()
	policy := delivery.Policy{Base: time.Millisecond, Cap: time.Millisecond, Window: time.Hour, MaxRetryAfter: time.Second}
	h := newHarness(t, harnessOptions{policy: policy, breakerMin: 300 * time.Millisecond})
	var healthy atomic.Bool
	rc := newReceiver(t, func(int, *http.Request) (int, http.Header) {
		if healthy.Load() {
			return 200, nil
		}
		return 503, nil
	})
	c := h.config(rc.URL, nil)
	h.ingest(event("cam1", livehooks.RecordStart, "t1"))
	waitFor(t, "five failures", 5*time.Second, func() bool { return len(rc.got()) >= 5 })
	// Open: no attempts for a while although retries are due every millisecond.
	n := len(rc.got())
	time.Sleep(150 * time.Millisecond)
	if got := len(rc.got()); got > n+1 {
		t.Fatalf("breaker did not open: %d attempts after %d", got, n)
	}
	healthy.Store(true)
	waitFor(t, "recovery", 5*time.Second, func() bool { return h.deliveries(c)[0].Status == livehooks.DeliverySucceeded })
}

// TestSSRFRefusedAtDialTime: with no allow-list, loopback is refused even
// through a host name that resolves to it, and the delivery fails at once.
func TestSSRFRefusedAtDialTime(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{noAllow: true})
	rc := newReceiver(t, nil)
	port := rc.URL[strings.LastIndex(rc.URL, ":")+1:]
	cases := []string{
		rc.URL,                                  // 127.0.0.1
		"http://localhost:" + port + "/cb",      // a name that resolves to loopback
		"http://169.254.169.254:" + port + "/x", // cloud metadata
		"http://[::1]:" + port + "/cb",
		"http://10.0.0.1:" + port + "/cb",
	}
	for i, url := range cases {
		domain := fmt.Sprintf("d%d.example.com", i)
		c := h.config(url, func(c *livehooks.CallbackConfig) { c.PublishDomain = domain })
		e := event("cam1", livehooks.RecordStart, "t1")
		e.PublishDomain = domain
		h.ingest(e)
		waitFor(t, url, 5*time.Second, func() bool {
			ds := h.deliveries(c)
			return len(ds) == 1 && ds[0].Status == livehooks.DeliveryFailed
		})
		if d := h.deliveries(c)[0]; !strings.Contains(d.LastError, "destination refused") || d.Attempts != 1 {
			t.Fatalf("%s: %+v", url, d)
		}
	}
	if len(rc.got()) != 0 {
		t.Fatal("a refused destination was reached")
	}
}

func TestSSRFAllowList(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	rc := newReceiver(t, nil)
	port := rc.URL[strings.LastIndex(rc.URL, ":")+1:]
	c := h.config("http://localhost:"+port+"/cb", nil)
	h.ingest(event("cam1", livehooks.RecordStart, "t1"))
	waitFor(t, "allowed delivery", 5*time.Second, func() bool {
		ds := h.deliveries(c)
		return len(ds) == 1 && ds[0].Status == livehooks.DeliverySucceeded
	})
}

// slowClaims counts ClaimLanes calls and makes each take a few
// milliseconds, as a claim on a database server does.
type slowClaims struct {
	*sqlite.DB
	claims atomic.Int64
}

func (s *slowClaims) ClaimLanes(ctx context.Context, node string, now time.Time, lease time.Duration, max int) ([]livehooks.Lane, error) {
	s.claims.Add(1)
	time.Sleep(5 * time.Millisecond)
	return s.DB.ClaimLanes(ctx, node, now, lease, max)
}

// TestWakesWhileClaimingAreGathered: wakes that arrive while the dispatcher
// claims lanes (with several nodes, nearly every commit of another node)
// are answered by one claim after a short pause, not one claim each, back
// to back; a lane that becomes due is still claimed promptly.
func TestWakesWhileClaimingAreGathered(t *testing.T) {
	var store *slowClaims
	h := newHarness(t, harnessOptions{poll: time.Hour, outbox: func(db *sqlite.DB) livehooks.Outbox {
		store = &slowClaims{DB: db}
		return store
	}})
	d, db := h.dispatcher, h.store

	time.Sleep(50 * time.Millisecond) // the claim at start
	before := store.claims.Load()
	start := time.Now()
	for time.Since(start) < 200*time.Millisecond {
		d.Wake()
		time.Sleep(500 * time.Microsecond)
	}
	time.Sleep(50 * time.Millisecond)
	// Back to back, 200 ms of wakes would make about 40 claims of 5 ms.
	if n := store.claims.Load() - before; n < 2 || n > 16 {
		t.Fatalf("%d claims for 200 ms of wakes, want one per pause (about 9)", n)
	}

	// A lane handed back due now (as another node's enqueue leaves it) is
	// claimed within a pause or two of the wake that tells of it.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	h.config(srv.URL, nil)
	var ds []*livehooks.Delivery
	if err := db.Write(context.Background(), func(tx livehooks.OutboxTx) (err error) {
		ds, err = tx.Enqueue(context.Background(), "another-node", time.Now(), []*livehooks.Event{{ID: randomHex(), ProjectID: h.project,
			Type: livehooks.RecordStart, PublishDomain: "push.example.com", App: "live", Stream: "s", OccurredAt: time.Now()}})
		if err == nil && len(ds) == 1 {
			_, err = tx.Defer(context.Background(), "another-node", ds[0].Lane, time.Now())
		}
		return err
	}); err != nil || len(ds) != 1 {
		t.Fatalf("enqueue: %v (%d deliveries)", err, len(ds))
	}
	d.Wake()
	deadline := time.Now().Add(2 * time.Second)
	for {
		got, _, err := db.FindDeliveries(context.Background(), livehooks.DeliveryFilter{ProjectID: h.project, Status: livehooks.DeliverySucceeded})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the delivery of a lane handed back was not sent within 2 s of the wake")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
