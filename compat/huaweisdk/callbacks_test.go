package huaweisdk

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	live "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/live/v1"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/live/v1/model"
)

const (
	timeFormat   = "2006-01-02T15:04:05Z"
	callbackKey  = "compatKey0123456789abcdefghijABCDEFGHIJ"
	callbackKey2 = "compatKey9876543210abcdefghijABCDEFGHIJ"
	errIllegal   = "LIVE.100011001"
)

var idRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

func subscriptions(events ...string) *[]model.RecordCallbackConfigRequestNotifyEventSubscription {
	enum := model.GetRecordCallbackConfigRequestNotifyEventSubscriptionEnum()
	byName := map[string]model.RecordCallbackConfigRequestNotifyEventSubscription{
		"RECORD_NEW_FILE_START": enum.RECORD_NEW_FILE_START,
		"RECORD_FILE_COMPLETE":  enum.RECORD_FILE_COMPLETE,
		"RECORD_OVER":           enum.RECORD_OVER,
		"RECORD_FAILED":         enum.RECORD_FAILED,
	}
	var subs []model.RecordCallbackConfigRequestNotifyEventSubscription
	for _, e := range events {
		subs = append(subs, byName[e])
	}
	return &subs
}

// values returns the string values of SDK enums (any type with Value() string).
func values[E interface{ Value() string }](enums *[]E) []string {
	if enums == nil {
		return nil
	}
	var out []string
	for _, e := range *enums {
		out = append(out, e.Value())
	}
	return out
}

func deref[T any](p *T) (v T) {
	if p != nil {
		v = *p
	}
	return v
}

func ptr[T any](v T) *T { return &v }

// wantServiceError checks that err is the SDK's error for an HTTP error answer
// with that status and code, a message and a request id.
func wantServiceError(t *testing.T, call string, err error, status int, code string) {
	t.Helper()
	var se *sdkerr.ServiceResponseError
	if !errors.As(err, &se) {
		t.Fatalf("%s: error %T %v, want *sdkerr.ServiceResponseError", call, err, err)
	}
	if se.StatusCode != status || (code != "" && se.ErrorCode != code) {
		t.Errorf("%s: status %d code %q (%s), want %d %q", call, se.StatusCode, se.ErrorCode, se.ErrorMessage, status, code)
	}
	if se.ErrorCode == "" || se.ErrorMessage == "" {
		t.Errorf("%s: error without code or message: %+v", call, se)
	}
	if se.RequestId == "" {
		t.Errorf("%s: no X-request-id in the error answer", call)
	}
}

// checkTimes checks that create and update times are in the wire format, in
// order, and near now.
func checkTimes(t *testing.T, call string, create, update *string) (time.Time, time.Time) {
	t.Helper()
	ct, err1 := time.Parse(timeFormat, deref(create))
	ut, err2 := time.Parse(timeFormat, deref(update))
	if err1 != nil || err2 != nil {
		t.Fatalf("%s: create_time %q, update_time %q: want %s", call, deref(create), deref(update), timeFormat)
	}
	if now := time.Now(); ct.Before(now.Add(-5*time.Minute)) || ct.After(now.Add(5*time.Minute)) || ut.Before(ct) {
		t.Errorf("%s: create_time %v, update_time %v, now %v", call, ct, ut, now)
	}
	return ct, ut
}

func TestCreateShowUpdateDelete(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c, rec := srv.client(t, ak1, sk1, "projA")

	// Create, with every field.
	created, err := c.CreateRecordCallbackConfig(&model.CreateRecordCallbackConfigRequest{Body: &model.RecordCallbackConfigRequest{
		PublishDomain:           "publish.example.com",
		App:                     "live",
		NotifyCallbackUrl:       ptr("http://127.0.0.1:9/callback"),
		NotifyEventSubscription: subscriptions("RECORD_OVER", "RECORD_NEW_FILE_START", "RECORD_FILE_COMPLETE"),
		SignType:                ptr(model.GetRecordCallbackConfigRequestSignTypeEnum().MD5),
		Key:                     ptr(callbackKey),
	}})
	if err != nil {
		t.Fatalf("CreateRecordCallbackConfig: %v", err)
	}
	id := deref(created.Id)
	if created.HttpStatusCode != 201 || !idRE.MatchString(id) {
		t.Fatalf("Create: status %d, id %q; want 201 and 32 lowercase hex digits", created.HttpStatusCode, id)
	}

	// Show parses every field.
	shown, err := c.ShowRecordCallbackConfig(&model.ShowRecordCallbackConfigRequest{Id: id})
	if err != nil {
		t.Fatalf("ShowRecordCallbackConfig: %v", err)
	}
	got := []string{deref(shown.Id), deref(shown.PublishDomain), deref(shown.App), deref(shown.NotifyCallbackUrl), strings.Join(values(shown.NotifyEventSubscription), ","), deref(shown.SignType).Value()}
	want := []string{id, "publish.example.com", "live", "http://127.0.0.1:9/callback", "RECORD_OVER,RECORD_NEW_FILE_START,RECORD_FILE_COMPLETE", "MD5"}
	if !slices.Equal(got, want) {
		t.Errorf("Show:\n got  %q\n want %q", got, want)
	}
	ct, _ := checkTimes(t, "Show", shown.CreateTime, shown.UpdateTime)

	// Update replaces the fields it is given.
	updated, err := c.UpdateRecordCallbackConfig(&model.UpdateRecordCallbackConfigRequest{Id: id, Body: &model.RecordCallbackConfigRequest{
		PublishDomain:           "publish.example.com",
		App:                     "live",
		NotifyCallbackUrl:       ptr("https://127.0.0.1:8443/new"),
		NotifyEventSubscription: subscriptions("RECORD_FAILED", "RECORD_FILE_COMPLETE"),
		SignType:                ptr(model.GetRecordCallbackConfigRequestSignTypeEnum().HMACSHA256),
		Key:                     ptr(callbackKey2),
	}})
	if err != nil {
		t.Fatalf("UpdateRecordCallbackConfig: %v", err)
	}
	if updated.HttpStatusCode != 200 {
		t.Errorf("Update: status %d, want 200", updated.HttpStatusCode)
	}
	got = []string{deref(updated.Id), deref(updated.NotifyCallbackUrl), strings.Join(values(updated.NotifyEventSubscription), ","), deref(updated.SignType).Value()}
	want = []string{id, "https://127.0.0.1:8443/new", "RECORD_FAILED,RECORD_FILE_COMPLETE", "HMACSHA256"}
	if !slices.Equal(got, want) {
		t.Errorf("Update:\n got  %q\n want %q", got, want)
	}
	shown, err = c.ShowRecordCallbackConfig(&model.ShowRecordCallbackConfigRequest{Id: id})
	if err != nil {
		t.Fatalf("Show after Update: %v", err)
	}
	if deref(shown.NotifyCallbackUrl) != "https://127.0.0.1:8443/new" || deref(shown.SignType).Value() != "HMACSHA256" {
		t.Errorf("Show after Update: %v", shown)
	}
	if ct2, _ := checkTimes(t, "Show after Update", shown.CreateTime, shown.UpdateTime); !ct2.Equal(ct) {
		t.Errorf("Update changed create_time from %v to %v", ct, ct2)
	}

	// Delete, then the config is gone: 404 as Terraform expects.
	deleted, err := c.DeleteRecordCallbackConfig(&model.DeleteRecordCallbackConfigRequest{Id: id})
	if err != nil {
		t.Fatalf("DeleteRecordCallbackConfig: %v", err)
	}
	if deleted.HttpStatusCode != 204 {
		t.Errorf("Delete: status %d, want 204", deleted.HttpStatusCode)
	}
	_, err = c.ShowRecordCallbackConfig(&model.ShowRecordCallbackConfigRequest{Id: id})
	wantServiceError(t, "Show after Delete", err, 404, errIllegal)
	_, err = c.DeleteRecordCallbackConfig(&model.DeleteRecordCallbackConfigRequest{Id: id})
	wantServiceError(t, "Delete after Delete", err, 404, errIllegal)
	_, err = c.UpdateRecordCallbackConfig(&model.UpdateRecordCallbackConfigRequest{Id: id, Body: &model.RecordCallbackConfigRequest{PublishDomain: "publish.example.com", App: "live"}})
	wantServiceError(t, "Update after Delete", err, 404, errIllegal)

	if all := rec.all(); strings.Contains(all, callbackKey) || strings.Contains(all, callbackKey2) || strings.Contains(all, `"key"`) {
		t.Errorf("a response contains the callback key:\n%s", all)
	}
}

func TestSignTypeDefault(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c, _ := srv.client(t, ak1, sk1, "projA")
	created, err := c.CreateRecordCallbackConfig(&model.CreateRecordCallbackConfigRequest{Body: &model.RecordCallbackConfigRequest{
		PublishDomain:     "publish.example.com",
		App:               "*",
		NotifyCallbackUrl: ptr("http://127.0.0.1:9/callback"),
	}})
	if err != nil {
		t.Fatalf("CreateRecordCallbackConfig: %v", err)
	}
	shown, err := c.ShowRecordCallbackConfig(&model.ShowRecordCallbackConfigRequest{Id: deref(created.Id)})
	if err != nil {
		t.Fatalf("ShowRecordCallbackConfig: %v", err)
	}
	if deref(shown.SignType).Value() != "HMACSHA256" || strings.Join(values(shown.NotifyEventSubscription), ",") != "RECORD_FILE_COMPLETE" || deref(shown.App) != "*" {
		t.Errorf("defaults: sign_type %q, subscription %q, app %q; want HMACSHA256, RECORD_FILE_COMPLETE, *",
			deref(shown.SignType).Value(), values(shown.NotifyEventSubscription), deref(shown.App))
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c, _ := srv.client(t, ak1, sk1, "projA")

	// 12 configs: 8 apps on one domain, 4 on another.
	type key struct{ domain, app string }
	ids := map[string]key{}
	for i := range 12 {
		k := key{"one.example.com", fmt.Sprintf("app%02d", i)}
		if i >= 8 {
			k = key{"two.example.com", fmt.Sprintf("app%02d", i-8)}
		}
		resp, err := c.CreateRecordCallbackConfig(&model.CreateRecordCallbackConfigRequest{Body: &model.RecordCallbackConfigRequest{
			PublishDomain: k.domain, App: k.app, NotifyCallbackUrl: ptr("http://127.0.0.1:9/cb"),
		}})
		if err != nil {
			t.Fatalf("Create %v: %v", k, err)
		}
		ids[deref(resp.Id)] = k
	}

	list := func(domain, app string, offset, limit int32) ([]model.RecordCallbackConfig, int32) {
		t.Helper()
		req := &model.ListRecordCallbackConfigsRequest{}
		if domain != "" {
			req.PublishDomain = &domain
		}
		if app != "" {
			req.App = &app
		}
		if offset >= 0 {
			req.Offset = &offset
		}
		if limit >= 0 {
			req.Limit = &limit
		}
		resp, err := c.ListRecordCallbackConfigs(req)
		if err != nil {
			t.Fatalf("List(%q, %q, %d, %d): %v", domain, app, offset, limit, err)
		}
		return deref(resp.CallbackConfig), deref(resp.Total)
	}

	// Pages of 5 cover the 12 exactly once, in a stable order.
	var seen []string
	for offset := int32(0); offset < 15; offset += 5 {
		page, total := list("", "", offset, 5)
		if total != 12 {
			t.Errorf("offset %d: total %d, want 12", offset, total)
		}
		if wantLen := min(5, max(0, 12-int(offset))); len(page) != wantLen {
			t.Errorf("offset %d: %d configs, want %d", offset, len(page), wantLen)
		}
		for _, cfg := range page {
			id := deref(cfg.Id)
			k, ok := ids[id]
			if !ok || slices.Contains(seen, id) {
				t.Errorf("offset %d: unexpected or repeated id %q", offset, id)
			}
			if cfg.PublishDomain != k.domain || cfg.App != k.app || deref(cfg.SignType).Value() != "HMACSHA256" {
				t.Errorf("config %s: %v, want %v", id, cfg, k)
			}
			checkTimes(t, "List", cfg.CreateTime, cfg.UpdateTime)
			seen = append(seen, id)
		}
	}
	if len(seen) != 12 {
		t.Errorf("paging saw %d configs, want 12", len(seen))
	}
	var again []string
	for offset := int32(0); offset < 12; offset += 4 {
		page, _ := list("", "", offset, 4)
		for _, cfg := range page {
			again = append(again, deref(cfg.Id))
		}
	}
	if !slices.Equal(seen, again) {
		t.Errorf("order differs between page sizes:\n%v\n%v", seen, again)
	}

	// Filters: total counts every match, not the page.
	tests := []struct {
		domain, app   string
		offset, limit int32
		wantTotal     int32
		wantLen       int
	}{
		{"", "", -1, -1, 12, 10}, // default limit 10
		{"one.example.com", "", 0, 3, 8, 3},
		{"one.example.com", "", 6, 3, 8, 2},
		{"two.example.com", "", -1, -1, 4, 4},
		{"", "app01", -1, -1, 2, 2},
		{"two.example.com", "app01", 0, 100, 1, 1},
		{"one.example.com", "app09", -1, -1, 0, 0},
		{"three.example.com", "", -1, -1, 0, 0},
		{"", "", 12, 10, 12, 0},
	}
	for _, tt := range tests {
		page, total := list(tt.domain, tt.app, tt.offset, tt.limit)
		if total != tt.wantTotal || len(page) != tt.wantLen {
			t.Errorf("List(domain %q, app %q, offset %d, limit %d): total %d, %d configs; want %d, %d",
				tt.domain, tt.app, tt.offset, tt.limit, total, len(page), tt.wantTotal, tt.wantLen)
		}
		for _, cfg := range page {
			if (tt.domain != "" && cfg.PublishDomain != tt.domain) || (tt.app != "" && cfg.App != tt.app) {
				t.Errorf("List(domain %q, app %q) returned %s/%s", tt.domain, tt.app, cfg.PublishDomain, cfg.App)
			}
		}
	}

	// Out-of-range paging is bad input.
	for _, limit := range []int32{0, 101} {
		_, err := c.ListRecordCallbackConfigs(&model.ListRecordCallbackConfigsRequest{Limit: &limit})
		wantServiceError(t, fmt.Sprintf("List(limit %d)", limit), err, 400, errIllegal)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c, _ := srv.client(t, ak1, sk1, "projA")
	valid := func() *model.RecordCallbackConfigRequest {
		return &model.RecordCallbackConfigRequest{PublishDomain: "publish.example.com", App: "live", NotifyCallbackUrl: ptr("http://127.0.0.1:9/cb")}
	}

	tests := []struct {
		name   string
		client *live.LiveClient
		body   func(*model.RecordCallbackConfigRequest)
		status int
		code   string
	}{
		{name: "ftp callback URL", client: c, body: func(b *model.RecordCallbackConfigRequest) { b.NotifyCallbackUrl = ptr("ftp://x") }, status: 400, code: errIllegal},
		{name: "URL with query", client: c, body: func(b *model.RecordCallbackConfigRequest) { b.NotifyCallbackUrl = ptr("http://127.0.0.1/cb?a=1") }, status: 400, code: errIllegal},
		{name: "no publish domain", client: c, body: func(b *model.RecordCallbackConfigRequest) { b.PublishDomain = "" }, status: 400, code: errIllegal},
		{name: "bad app", client: c, body: func(b *model.RecordCallbackConfigRequest) { b.App = "a b" }, status: 400, code: errIllegal},
		{name: "short key", client: c, body: func(b *model.RecordCallbackConfigRequest) { b.Key = ptr("abc123") }, status: 400, code: errIllegal},
		{name: "wrong SK", client: first(srv.client(t, ak1, sk2, "projA")), status: 401, code: "APIGW.0301"},
		{name: "unknown AK", client: first(srv.client(t, "NOSUCHAK000000000000", sk1, "projA")), status: 401, code: "APIGW.0301"},
		{name: "AK bound to projB used on projA", client: first(srv.client(t, ak2, sk2, "projA")), status: 403},
	}
	for _, tt := range tests {
		body := valid()
		if tt.body != nil {
			tt.body(body)
		}
		_, err := tt.client.CreateRecordCallbackConfig(&model.CreateRecordCallbackConfigRequest{Body: body})
		wantServiceError(t, "Create: "+tt.name, err, tt.status, tt.code)
	}

	// Reads need valid credentials too.
	for _, tt := range tests[len(tests)-3:] {
		_, err := tt.client.ListRecordCallbackConfigs(&model.ListRecordCallbackConfigsRequest{})
		wantServiceError(t, "List: "+tt.name, err, tt.status, tt.code)
	}

	// A duplicate (project, domain, app) is a 400; the same on projB is not a duplicate.
	if _, err := c.CreateRecordCallbackConfig(&model.CreateRecordCallbackConfigRequest{Body: valid()}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	_, err := c.CreateRecordCallbackConfig(&model.CreateRecordCallbackConfigRequest{Body: valid()})
	wantServiceError(t, "Create duplicate", err, 400, errIllegal)
	cB, _ := srv.client(t, ak2, sk2, "projB")
	if _, err := cB.CreateRecordCallbackConfig(&model.CreateRecordCallbackConfigRequest{Body: valid()}); err != nil {
		t.Errorf("Create on projB: %v", err)
	}

	// Unknown ids are 404s, never 400s.
	_, err = c.ShowRecordCallbackConfig(&model.ShowRecordCallbackConfigRequest{Id: "0123456789abcdef0123456789abcdef"})
	wantServiceError(t, "Show unknown id", err, 404, errIllegal)
	_, err = c.ShowRecordCallbackConfig(&model.ShowRecordCallbackConfigRequest{Id: "no-such-config"})
	wantServiceError(t, "Show malformed id", err, 404, "")
}

func first[A, B any](a A, _ B) A { return a }
