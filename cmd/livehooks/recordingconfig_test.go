package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livehooks/livehooks/aesgcm"
	"github.com/livehooks/livehooks/store/sqlite"
)

const (
	configSecret = "Obs+Secret/Key-From-Env-0123456789"
	fileSecret   = "Plain-Secret-In-File-0123456789"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "recording.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const validRecordingConfig = `
domains:
  - project_id: p1
    publish_domain: push.example.com
    record_format: hls
    download_url_template: https://cdn.example.com/{app}/{stream}/{file}
    max_pause_seconds: 60
    reject_unknown_streams: true
    storage:
      endpoint: 127.0.0.1:9000
      secure: false
      bucket: recordings
      prefix: live/
      access_key: AKIDEXAMPLE
      secret_key_env: OBS_SECRET
      presign: true
      presign_expiry_seconds: 3600
  - project_id: p1
    publish_domain: other.example.com
  - project_id: p2
    publish_domain: push.example.com
    storage: {endpoint: s3.example.com, bucket: rec-p2, access_key: AK2, secret_key: "` + fileSecret + `"}
`

// TestRecordingConfigApplied: serve applies the file at start; the API shows
// the settings without their secrets; the store holds them, sealed.
func TestRecordingConfigApplied(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, validRecordingConfig)
	srv := start(t, map[string]string{"OBS_SECRET": configSecret, "LIVEHOOKS_RECORDING_CONFIG": cfg},
		"serve", "--listen", "127.0.0.1:0", "--data-dir", dir, "--token", "tok:*", "--log-format", "json")
	base := srv.serveAddr(t)

	status, body := request(t, "GET", base+"/v1/p1/record/domains", "tok", "")
	if status != 200 || !strings.Contains(body, `"total":2`) {
		t.Fatalf("list: %d %s", status, body)
	}
	status, body = request(t, "GET", base+"/v1/p1/record/domains/push.example.com", "tok", "")
	for _, want := range []string{`"record_format":"HLS"`, `"max_pause_seconds":60`, `"reject_unknown_streams":true`,
		`"endpoint":"127.0.0.1:9000"`, `"prefix":"live"`, `"presign_expiry_seconds":3600`} {
		if status != 200 || !strings.Contains(body, want) {
			t.Fatalf("show: %d %s lacks %s", status, body, want)
		}
	}
	_, p2 := request(t, "GET", base+"/v1/p2/record/domains/push.example.com", "tok", "")
	// The API may change a domain the file set; a PUT without the secret
	// keeps the file's.
	status, put := request(t, "PUT", base+"/v1/p1/record/domains/push.example.com", "tok",
		`{"storage":{"endpoint":"127.0.0.1:9000","bucket":"recordings","access_key":"AKIDEXAMPLE"}}`)
	if status != 200 {
		t.Fatalf("put: %d %s", status, put)
	}
	if err := srv.stop(t); err != nil {
		t.Fatalf("serve: %v", err)
	}
	for _, s := range []string{body, p2, put, srv.stderr.String()} {
		if strings.Contains(s, configSecret) || strings.Contains(s, fileSecret) {
			t.Fatalf("a secret shows: %s", s)
		}
	}
	if !strings.Contains(srv.stderr.String(), `"msg":"recording settings applied"`) {
		t.Fatalf("no log of the applied settings:\n%s", srv.stderr.String())
	}

	// The store has the secrets, sealed with the data directory's master key.
	key, err := aesgcm.LoadKey(dir, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	c, _ := aesgcm.New(key)
	db, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(dir, "livehooks.db"), Cipher: c})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, tc := range [][3]string{{"p1", "push.example.com", configSecret}, {"p2", "push.example.com", fileSecret}} {
		d, err := db.FindDomain(context.Background(), tc[0], tc[1])
		if err != nil {
			t.Fatal(err)
		}
		if d.Storage == nil || d.Storage.SecretKey != tc[2] {
			t.Fatalf("%s %s: storage %+v", tc[0], tc[1], d.Storage)
		}
	}
	d, _ := db.FindDomain(context.Background(), "p1", "other.example.com")
	if d == nil || d.RecordFormat != "FLV" || d.MaxPause != 30*time.Second || d.Storage != nil {
		t.Fatalf("defaults: %+v", d)
	}
}

// TestRecordingConfigInvalid: serve refuses to start and names the entry;
// nothing of an invalid file is stored and no error shows a secret.
func TestRecordingConfigInvalid(t *testing.T) {
	entry := func(extra string) string {
		return "domains:\n  - project_id: p1\n    publish_domain: ok.example.com\n  - project_id: p1\n    publish_domain: push.example.com\n" + extra
	}
	storage := "    storage:\n      endpoint: s3.example.com\n      bucket: rec\n      access_key: AK\n      secret_key: " + fileSecret + "\n"
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"bad bucket", entry(strings.Replace(storage, "bucket: rec", "bucket: Bad_Bucket", 1)), []string{"domains[1] (p1 push.example.com)", "storage.bucket"}},
		{"bad format", entry("    record_format: AVI\n"), []string{"domains[1]", "record_format"}},
		{"bad template", entry("    download_url_template: https://cdn.example.com/{nope}\n"), []string{"domains[1]", "{nope}"}},
		{"pause", entry("    max_pause_seconds: 86401\n"), []string{"domains[1]", "max_pause_seconds"}},
		{"expiry", entry(storage + "      presign_expiry_seconds: 0\n"), []string{"domains[1]", "presign_expiry_seconds"}},
		{"misspelt field", entry("    record_fromat: HLS\n"), []string{"record_fromat"}},
		{"misspelt storage field", entry(storage + "      secretkey: x\n"), []string{"secretkey"}},
		{"missing env", entry(strings.Replace(storage, "secret_key: "+fileSecret, "secret_key_env: NOT_SET_ANYWHERE", 1)), []string{"domains[1]", "NOT_SET_ANYWHERE"}},
		{"both secrets", entry(storage + "      secret_key_env: OBS_SECRET\n"), []string{"domains[1]", "not both"}},
		{"no secret", entry(strings.Replace(storage, "      secret_key: "+fileSecret+"\n", "", 1)), []string{"domains[1]", "secret_key is required"}},
		{"no domain", "domains:\n  - project_id: p1\n", []string{"domains[0]", "publish_domain"}},
		{"bad domain", "domains:\n  - project_id: p1\n    publish_domain: not_a_domain\n", []string{"domains[0] (p1 not_a_domain)", "DNS name"}},
		{"bad project", "domains:\n  - project_id: p/1\n    publish_domain: a.example.com\n", []string{"domains[0]", "project_id"}},
		{"duplicate", entry("  - project_id: p1\n    publish_domain: push.example.com\n"), []string{"domains[2]", "domains[1]"}},
		{"not yaml", "domains: [\n", []string{"recording.yaml"}},
		{"wrong type", "domains: {a: 1}\n", []string{"recording.yaml"}},
		{"not a bool", entry(storage + "      presign: maybe\n"), []string{"line 11", "bool"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := writeConfig(t, tc.body)
			var out bytes.Buffer
			getenv := func(k string) string { return map[string]string{"OBS_SECRET": configSecret}[k] }
			err := run(context.Background(), []string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dir, "--token", "tok:*", "--recording-config", cfg},
				getenv, nil, &out, &out)
			if err == nil {
				t.Fatal("serve started with an invalid recording config")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if strings.Contains(err.Error(), fileSecret) || strings.Contains(err.Error(), configSecret) || strings.Contains(out.String(), fileSecret) {
				t.Fatalf("the error or the log shows a secret: %v\n%s", err, out.String())
			}
			if strings.Contains(out.String(), "livehooks listening") {
				t.Fatal("serve listened")
			}
			// The valid first entry was not stored either.
			key, err := aesgcm.LoadKey(dir, func(string) string { return "" })
			if err != nil {
				return // failed before the store existed
			}
			c, _ := aesgcm.New(key)
			db, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(dir, "livehooks.db"), Cipher: c})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if list, _ := db.FindDomains(context.Background(), "p1"); len(list) != 0 {
				t.Fatalf("an invalid file stored %d domains", len(list))
			}
		})
	}
	var out bytes.Buffer
	err := run(context.Background(), []string{"serve", "--data-dir", t.TempDir(), "--token", "tok:*", "--recording-config", filepath.Join(t.TempDir(), "missing.yaml")},
		func(string) string { return "" }, nil, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "--recording-config") {
		t.Fatalf("missing file: %v", err)
	}
}

// TestRecordingConfigWarnsWhenReadable: a file with a plaintext secret that
// others can read draws a warning.
func TestRecordingConfigWarnsWhenReadable(t *testing.T) {
	cfg := writeConfig(t, "domains:\n  - project_id: p\n    publish_domain: a.example.com\n    storage: {endpoint: h, bucket: abc, access_key: a, secret_key: "+fileSecret+"}\n")
	if err := os.Chmod(cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := start(t, nil, "serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--token", "tok:*", "--log-format", "json", "--recording-config", cfg)
	srv.serveAddr(t)
	if !strings.Contains(srv.stderr.String(), "readable by other users") {
		t.Fatalf("no warning:\n%s", srv.stderr.String())
	}
}

// TestRecordingConfigUploadsToStorage: a domain whose storage comes from the
// config file gets its finished files uploaded (to an in-process S3 on
// loopback, opened by --allow-callback-cidr), and the callback's
// download_url is a presigned URL that serves the file.
func TestRecordingConfigUploadsToStorage(t *testing.T) {
	_, s3 := fakeS3(t, "recordings")
	rcv := newJSONReceiver(t)

	cfg := writeConfig(t, `
domains:
  - project_id: p1
    publish_domain: mtx.example.com
    storage:
      endpoint: `+strings.TrimPrefix(s3.URL, "http://")+`
      secure: false
      region: us-east-1
      bucket: recordings
      prefix: vod
      access_key: AKIDEXAMPLE
      secret_key_env: OBS_SECRET
      presign: true
      presign_expiry_seconds: 600
`)
	recDir := t.TempDir()
	srv := start(t, map[string]string{"OBS_SECRET": configSecret}, "serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log-format", "json",
		"--token", "T:p1", "--ingest-secret", "p1:S3cret", "--record-dir", recDir, "--allow-callback-cidr", "127.0.0.0/8", "--recording-config", cfg)
	base := srv.serveAddr(t)
	if status, body := request(t, "POST", base+"/v1/p1/record/callbacks", "T", `{"publish_domain":"mtx.example.com","app":"live","notify_callback_url":"`+
		rcv.URL+`/cb","notify_event_subscription":["RECORD_FILE_COMPLETE","RECORD_FAILED"]}`); status != 201 {
		t.Fatalf("create config: %d %s", status, body)
	}
	_, video := notifySegment(t, base, recDir)
	fc := rcv.wait(t, 1, srv)[0]
	if fc["event_type"] != "RECORD_FILE_COMPLETE" {
		t.Fatalf("callback %v\n%s", fc, srv.stderr.String())
	}
	u, _ := fc["download_url"].(string)
	if !strings.HasPrefix(u, s3.URL+"/recordings/vod/live/cam1/seg1.mp4?") || !strings.Contains(u, "X-Amz-Expires=600") {
		t.Fatalf("download_url %q", u)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(body, video) {
		t.Fatalf("GET download_url: %d, %d bytes", resp.StatusCode, len(body))
	}
	if err := srv.stop(t); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(srv.stderr.String(), configSecret) {
		t.Fatal("the storage secret was logged")
	}
}
