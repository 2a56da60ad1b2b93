package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestProjectDeliveriesPageByKeyset(t *testing.T) {
	t.Parallel()
	fs := newFullServer(t)
	c := create(t, fs.testServer, with(validConfig(), "notify_callback_url", fs.receiver.URL+"/cb"))
	var events []string
	for i := 0; i < 5; i++ {
		events = append(events, fmt.Sprintf(`{"event_type":"RECORD_FILE_COMPLETE","publish_domain":"push.example.com","app":"live","stream":"cam%d"}`, i%2))
	}
	if r := fs.do(t, "POST", eventsPath, tokenA, "["+strings.Join(events, ",")+"]"); r.status != 202 {
		t.Fatalf("ingest: %d %s", r.status, r.body)
	}
	type page struct {
		Deliveries []struct {
			ID         string `json:"delivery_id"`
			CallbackID string `json:"callback_id"`
			Stream     string `json:"stream"`
		} `json:"deliveries"`
		NextBefore string `json:"next_before"`
		Total      *int   `json:"total"`
	}
	get := func(q string) page {
		t.Helper()
		r := fs.do(t, "GET", "/v1/proja/record/deliveries"+q, tokenA, nil)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", q, r.status, r.body)
		}
		var p page
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var seen []string
	q := "?limit=2&callback_id=" + c["id"].(string)
	for p := get(q); ; p = get(q + "&before=" + p.NextBefore) {
		if p.Total != nil {
			t.Fatalf("the keyset page counts: %+v", p)
		}
		for _, d := range p.Deliveries {
			if d.CallbackID != c["id"] {
				t.Fatalf("other config: %+v", d)
			}
			seen = append(seen, d.ID)
		}
		if p.NextBefore == "" {
			break
		}
	}
	if strings.Join(seen, ",") != "5,4,3,2,1" {
		t.Fatalf("pages gave %v, want 5,4,3,2,1", seen)
	}
	if p := get("?stream=cam1&before=4"); len(p.Deliveries) != 1 || p.Deliveries[0].ID != "2" {
		t.Fatalf("filtered page: %+v", p)
	}
	for _, q := range []string{"?before=x", "?before=-1", "?callback_id=nothex", "?status=nope", "?limit=101", "?until=soon"} {
		wantError(t, fs.do(t, "GET", "/v1/proja/record/deliveries"+q, tokenA, nil), 400, "LIVE.100011001")
	}
	wantError(t, fs.do(t, "GET", "/v1/projb/record/deliveries", tokenA, nil), 403, "APIGW.0302")
}
