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
// The bench builds and starts it (bench/relay.go). It builds each callback
// with livehooks' own code (delivery.Sender.Request: the body of
// livehooks.Event.Message, auth_sign and the Standard Webhooks headers), so
// the ceiling does the same encoding and signing work as livehooks.
//
//	relay -listen 127.0.0.1:9000 -token TOKEN -key KEY \
//	    -route r0=CONFIGID=http://127.0.0.1:9001/hook/0 -route r1=…
package main

import (
	"bytes"
	"crypto/sha256"
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
	"syscall"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/delivery"
	"github.com/livehooks/livehooks/signature"
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
	token  string
	key    string
	routes routes
	sender *delivery.Sender // only its Request: the callback livehooks would send
	client *http.Client
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
		token: *token, key: *key, routes: rt,
		sender: delivery.NewSender(delivery.SenderOptions{SignValidity: *validity, UserAgent: "livehooks-bench-relay"}),
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
		id := livehooks.NewEventID()
		if e.JobID == "" && (e.EventType == "RECORD_NEW_FILE_START" || e.EventType == "RECORD_FILE_COMPLETE") {
			sum := sha256.Sum256([]byte(e.PublishDomain + "/" + e.App + "/" + e.Stream))
			e.JobID = hex.EncodeToString(sum[:16])
		}
		out[i] = ingestedEvent{EventID: id, TaskID: e.TaskID, JobID: e.JobID}
		rt, ok := rl.routes[e.App]
		if !ok {
			continue // no config matches: accepted, nothing to deliver (as livehooks)
		}
		ev, err := e.event(id, project)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := rl.forward(r, rt, ev); err != nil {
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

// forward sends one callback, made as delivery.Sender makes it.
func (rl *relay) forward(r *http.Request, rt route, ev *livehooks.Event) error {
	header, body := rl.sender.Request(livehooks.SendRequest{
		URL: rt.url, Key: rl.key, SignType: signature.HMACSHA256, WebhookID: livehooks.WebhookID(ev.ID, rt.configID), Event: ev, N: 1,
	}, time.Now())
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, rt.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header = header
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

// event is e as livehooks stores it.
func (e *eventRequest) event(id, project string) (*livehooks.Event, error) {
	ev := &livehooks.Event{
		ID: id, ProjectID: project, Type: livehooks.EventType(e.EventType),
		PublishDomain: e.PublishDomain, App: e.App, Stream: e.Stream, TaskID: e.TaskID, JobID: e.JobID,
		RecordFormat: e.RecordFormat, DownloadURL: e.DownloadURL, AssetID: e.AssetID,
		FileSize: e.FileSize, RecordDuration: e.RecordDuration, Width: e.Width, Height: e.Height, PlayURL: e.PlayURL,
	}
	for _, t := range []struct {
		raw string
		dst *time.Time
	}{{e.StartTime, &ev.StartTime}, {e.EndTime, &ev.EndTime}} {
		if t.raw == "" {
			continue
		}
		v, err := livehooks.ParseTime(t.raw)
		if err != nil {
			return nil, fmt.Errorf("bad time %q", t.raw)
		}
		*t.dst = v
	}
	return ev, nil
}
