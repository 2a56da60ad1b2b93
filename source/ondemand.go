package source

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/signature"
)

// OnDemandEvent is the event field of an on-demand question.
const OnDemandEvent = "on_demand"

// OnDemandRequest is the body livehooks posts to a config's
// on_demand_callback_url when one of its streams starts publishing. It is
// signed like callbacks (webhook-id, webhook-timestamp and, when the config
// has a key, webhook-signature).
type OnDemandRequest struct {
	PublishDomain string `json:"publish_domain"`
	App           string `json:"app"`
	Stream        string `json:"stream"`
	ProjectID     string `json:"project_id"`
	Event         string `json:"event"`
}

// OnDemandAnswer is the receiver's answer: a 2xx with {"record": true}
// records the stream; anything else, or no answer within the timeout, does not.
type OnDemandAnswer struct {
	Record bool `json:"record"`
}

// maxOnDemandAnswer bounds how much of an answer is read.
const maxOnDemandAnswer = 64 << 10

// askOnDemand asks cfg's on-demand URL whether to record key's publish, and
// logs the decision with its reason.
func (s *Source) askOnDemand(ctx context.Context, cfg *livehooks.CallbackConfig, key livehooks.StreamKey) bool {
	record, reason := s.onDemand(ctx, cfg, key)
	host := ""
	if u, err := url.Parse(cfg.OnDemandCallbackURL); err == nil {
		host = u.Host
	}
	s.o.Logger.Info("on-demand recording decision", streamAttrs(key, "callback_id", cfg.ID, "on_demand_host", host, "record", record, "reason", reason)...)
	return record
}

func (s *Source) onDemand(ctx context.Context, cfg *livehooks.CallbackConfig, key livehooks.StreamKey) (bool, string) {
	if s.o.HTTPClient == nil {
		return false, "livehooks has no HTTP client for on-demand questions"
	}
	body, err := json.Marshal(OnDemandRequest{PublishDomain: key.PublishDomain, App: key.App, Stream: key.Stream, ProjectID: key.ProjectID, Event: OnDemandEvent})
	if err != nil {
		return false, err.Error()
	}
	ctx, cancel := context.WithTimeout(ctx, s.o.OnDemandTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.OnDemandCallbackURL, bytes.NewReader(body))
	if err != nil {
		return false, "invalid on_demand_callback_url"
	}
	var idb [16]byte
	_, _ = rand.Read(idb[:])
	id := "msg_" + hex.EncodeToString(idb[:])
	now := s.o.Clock.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now, 10))
	if cfg.Key != "" {
		req.Header.Set("webhook-signature", signature.WebhookSignature(cfg.Key, id, now, body))
	}
	resp, err := s.o.HTTPClient.Do(req)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return false, "no answer within " + s.o.OnDemandTimeout.String()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return false, "request failed: " + err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return false, "answered " + strconv.Itoa(resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxOnDemandAnswer))
	if err != nil {
		return false, "reading the answer: " + err.Error()
	}
	var ans OnDemandAnswer
	if err := json.Unmarshal(b, &ans); err != nil {
		return false, `answer is not {"record": true|false}`
	}
	if !ans.Record {
		return false, "answered record=false"
	}
	return true, "answered record=true"
}
