// Command relay is the bench's ceiling for livehooks: the smallest Go program
// that takes the ingest request livehooks takes (POST
// /v1/{project_id}/record/events, X-Auth-Token, one event object or an array
// of them) and forwards the callback livehooks would send (the same JSON
// body, signed with auth_sign/auth_timestamp and the Standard Webhooks
// headers when a key is set) to the receiver of the event's app. No storage,
// no retries, no queues: each request forwards its events one after another
// and is answered 202, with the event ids, once the receivers answered 2xx
// (502 otherwise). Per-stream order holds because an ingest client waits for
// the answer before it sends the stream's next event.
//
// The bench builds and starts it (bench/relay.go); it imports only the
// standard library, so it builds whatever state the rest of the tree is in.
//
//	relay -listen 127.0.0.1:9000 -token TOKEN -key KEY \
//	    -route r0=CONFIGID=http://127.0.0.1:9001/hook/0 -route r1=…
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type route struct {
	configID string
	url      string
}

type routes map[string]route

func (r routes) String() string { return fmt.Sprint(map[string]route(r)) }
func (r routes) Set(v string) error {
	app, rest, ok1 := strings.Cut(v, "=")
	id, url, ok2 := strings.Cut(rest, "=")
	if !ok1 || !ok2 || app == "" || id == "" || url == "" {
		return errors.New("want APP=CONFIGID=URL")
	}
	r[app] = route{configID: id, url: url}
	return nil
}

type relay struct {
	token    string
	key      string
	validity time.Duration
	routes   routes
	client   *http.Client
	bufs     sync.Pool
}

// eventRequest is the ingest API's event (api/events.go), the fields the
// bench sends and a few more.
type eventRequest struct {
	EventType      string `json:"event_type"`
	PublishDomain  string `json:"publish_domain"`
	App            string `json:"app"`
	Stream         string `json:"stream"`
	TaskID         string `json:"task_id"`
	JobID          string `json:"job_id"`
	RecordFormat   string `json:"record_format"`
	DownloadURL    string `json:"download_url"`
	AssetID        string `json:"asset_id"`
	FileSize       int64  `json:"file_size"`
	RecordDuration int64  `json:"record_duration"`
	StartTime      string `json:"start_time"`
	EndTime        string `json:"end_time"`
	Width          int    `json:"width"`
	Height         int    `json:"height"`
	PlayURL        string `json:"play_url"`
}

type ingestedEvent struct {
	EventID string `json:"event_id"`
	TaskID  string `json:"task_id"`
	JobID   string `json:"job_id,omitempty"`
}

func main() {
	rt := routes{}
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	token := flag.String("token", "", "X-Auth-Token to require")
	key := flag.String("key", "", "callback key: sign callbacks as livehooks does (empty: unsigned)")
	validity := flag.Duration("sign-validity", 300*time.Second, "auth_timestamp = send time + this")
	timeout := flag.Duration("request-timeout", 10*time.Second, "callback whole-request timeout")
	flag.Var(rt, "route", "APP=CONFIGID=URL: events of APP go to URL; CONFIGID makes the webhook-id (repeatable)")
	flag.Parse()

	rl := &relay{
		token: *token, key: *key, validity: *validity, routes: rt,
		client: &http.Client{
			Timeout: *timeout,
			Transport: &http.Transport{
				DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
				MaxIdleConns:        1024,
				MaxIdleConnsPerHost: 256,
				IdleConnTimeout:     90 * time.Second,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/{project_id}/record/events", rl.ingest)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	go func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM, os.Interrupt)
		<-ch
		_ = srv.Close()
	}()
	fmt.Println("relay listening on", ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

func (rl *relay) ingest(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Auth-Token") != rl.token {
		http.Error(w, `{"error_code":"LIVE.103","error_msg":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	project := r.PathValue("project_id")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, "body", http.StatusBadRequest)
		return
	}
	var evs []eventRequest
	if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '[' {
		err = json.Unmarshal(t, &evs)
	} else {
		evs = make([]eventRequest, 1)
		err = json.Unmarshal(t, &evs[0])
	}
	if err != nil || len(evs) == 0 {
		http.Error(w, "malformed JSON", http.StatusBadRequest)
		return
	}
	out := make([]ingestedEvent, len(evs))
	for i := range evs {
		e := &evs[i]
		if e.EventType == "" || e.App == "" || e.Stream == "" || e.TaskID == "" {
			http.Error(w, "event_type, app, stream and task_id are required", http.StatusBadRequest)
			return
		}
		id := newEventID()
		if e.JobID == "" && (e.EventType == "RECORD_NEW_FILE_START" || e.EventType == "RECORD_FILE_COMPLETE") {
			sum := sha256.Sum256([]byte(e.PublishDomain + "/" + e.App + "/" + e.Stream))
			e.JobID = hex.EncodeToString(sum[:16])
		}
		out[i] = ingestedEvent{EventID: id, TaskID: e.TaskID, JobID: e.JobID}
		rt, ok := rl.routes[e.App]
		if !ok {
			continue // no config matches: accepted, nothing to deliver (as livehooks)
		}
		if err := rl.forward(r, project, id, rt, e); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
	}
	b, _ := json.Marshal(struct {
		Events []ingestedEvent `json:"events"`
	}{out})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(b)
}

// forward sends one callback, as delivery.Sender does.
func (rl *relay) forward(r *http.Request, project, eventID string, rt route, e *eventRequest) error {
	now := time.Now()
	bp, _ := rl.bufs.Get().(*bytes.Buffer)
	if bp == nil {
		bp = new(bytes.Buffer)
	}
	defer rl.bufs.Put(bp)
	bp.Reset()
	var sign string
	var expires int64
	if rl.key != "" {
		expires = now.Add(rl.validity).Unix()
		m := hmac.New(sha256.New, []byte(rl.key))
		for _, s := range [...]string{strconv.FormatInt(expires, 10), e.EventType, e.PublishDomain, e.App, e.Stream, e.DownloadURL, e.PlayURL} {
			m.Write([]byte(s))
		}
		sign = hex.EncodeToString(m.Sum(nil))
	}
	message(bp, project, e, sign, expires)
	body := bp.Bytes()

	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, rt.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(eventID + "/" + rt.configID))
	webhookID := "msg_" + hex.EncodeToString(sum[:16])
	ts := strconv.FormatInt(now.Unix(), 10)
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "livehooks-bench-relay")
	h.Set("webhook-id", webhookID)
	h.Set("webhook-timestamp", ts)
	if rl.key != "" {
		m := hmac.New(sha256.New, []byte(rl.key))
		m.Write([]byte(webhookID + "." + ts + "."))
		m.Write(body)
		h.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
	}
	resp, err := rl.client.Do(req)
	if err != nil {
		return fmt.Errorf("forward: %v", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("forward: receiver answered %d", resp.StatusCode)
	}
	return nil
}

// message writes the callback body as livehooks.Event.Message does.
func message(b *bytes.Buffer, project string, e *eventRequest, sign string, expires int64) {
	first := true
	str := func(name, v string) {
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteByte('"')
		b.WriteString(name)
		b.WriteString(`":`)
		enc, _ := json.Marshal(v)
		b.Write(enc)
	}
	num := func(name string, v int64) {
		b.WriteString(`,"`)
		b.WriteString(name)
		b.WriteString(`":`)
		b.WriteString(strconv.FormatInt(v, 10))
	}
	b.WriteByte('{')
	str("project_id", project)
	fileComplete := e.EventType == "RECORD_FILE_COMPLETE"
	if fileComplete || e.EventType == "RECORD_NEW_FILE_START" {
		str("job_id", e.JobID)
	}
	str("task_id", e.TaskID)
	str("event_type", e.EventType)
	str("publish_domain", e.PublishDomain)
	str("app", e.App)
	str("stream", e.Stream)
	if e.RecordFormat != "" {
		str("record_format", e.RecordFormat)
	}
	if fileComplete {
		str("download_url", e.DownloadURL)
		str("asset_id", e.AssetID)
		num("file_size", e.FileSize)
		num("record_duration", e.RecordDuration)
		str("start_time", e.StartTime)
		str("end_time", e.EndTime)
		num("width", int64(e.Width))
		num("height", int64(e.Height))
	}
	if e.PlayURL != "" {
		str("play_url", e.PlayURL)
	}
	if sign != "" {
		str("auth_sign", sign)
		num("auth_timestamp", expires)
	}
	b.WriteByte('}')
}

// newEventID is livehooks' event id: 32 hex digits, 12 of Unix milliseconds
// and the rest random.
func newEventID() string {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	_, _ = rand.Read(b[6:])
	return hex.EncodeToString(b[:])
}
