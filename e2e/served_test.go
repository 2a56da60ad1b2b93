package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livehooks/livehooks/fileserve"
)

// TestNginxRTMPServedRecordings: with only --record-dir (no URL template, no
// object storage, no domain settings at all), every RECORD_FILE_COMPLETE
// carries a download_url that livehooks itself answers with the recorded
// file's bytes; ranges and HEAD work; an expired or tampered link is refused.
func TestNginxRTMPServedRecordings(t *testing.T) {
	requireNginx(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const domain = "served.example.com"
	tmp := t.TempDir()
	recDir, dataDir := filepath.Join(tmp, "rec"), filepath.Join(tmp, "data")
	if err := os.Mkdir(recDir, 0o755); err != nil {
		t.Fatal(err)
	}
	rcv := newReceiver(t)
	lh := startLivehooks(t, "--allow-callback-cidr", "127.0.0.0/8", "--record-dir", recDir, "--data-dir", dataDir,
		"--ingest-secret", project+":"+ingestSecret, "--token", token+":"+project)
	lh.api(t, "POST", "/v1/"+project+"/record/callbacks", token, map[string]any{
		"publish_domain": domain, "app": "live", "notify_callback_url": rcv.srv.URL + "/cb",
		"notify_event_subscription": allEvents, "key": callbackKey}, 201)
	ng := startNginx(t, tmp, recDir, "all", lh.base+"/hooks/nginx-rtmp/"+project+"?secret="+ingestSecret+"&domain="+domain)
	publish(ctx, t, ng.rtmp+"/live/cam1", 8*time.Second)

	withMedia := 0
	for _, name := range newFiles(t, recDir, map[string]bool{}) {
		if fi, err := os.Stat(filepath.Join(recDir, name)); err == nil && fi.Size() > 1024 {
			withMedia++
		}
	}
	if withMedia < 2 {
		t.Fatalf("%d files with media, want 2 (record_interval 5 s, 8 s published)", withMedia)
	}
	rcv.waitFor(t, 20*time.Second, "every RECORD_FILE_COMPLETE", func(c []callback) bool { return count(c, "RECORD_FILE_COMPLETE") == withMedia })
	var links []string
	for _, c := range rcv.callbacks() {
		if c.str("event_type") == "RECORD_FILE_COMPLETE" {
			links = append(links, c.str("download_url"))
		}
	}

	realRec, _ := filepath.EvalSymlinks(recDir)
	for _, link := range links {
		u, err := url.Parse(link)
		if err != nil || !strings.HasPrefix(link, lh.base+"/recordings/"+project+"/") || u.Query().Get("signature") == "" || u.Query().Get("expires") == "" {
			t.Fatalf("download_url %q: not a signed link to livehooks", link)
		}
		file, err := os.ReadFile(filepath.Join(recDir, filepath.Base(u.Path)))
		if err != nil {
			t.Fatal(err)
		}
		resp, body := fetch(t, "GET", link, "")
		if resp.StatusCode != 200 || !bytes.Equal(body, file) || resp.Header.Get("Content-Type") != "video/x-flv" ||
			!strings.HasPrefix(resp.Header.Get("Cache-Control"), "private, max-age=6047") {
			t.Fatalf("GET %s: %d %s %q, %d bytes; the file has %d", link, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"), len(body), len(file))
		}
		resp, body = fetch(t, "GET", link, "bytes=100-1099")
		if resp.StatusCode != 206 || !bytes.Equal(body, file[100:1100]) {
			t.Fatalf("range of %s: %d, %d bytes", link, resp.StatusCode, len(body))
		}
		resp, body = fetch(t, "HEAD", link, "")
		if resp.StatusCode != 200 || resp.ContentLength != int64(len(file)) || len(body) != 0 {
			t.Fatalf("HEAD %s: %d, length %d", link, resp.StatusCode, resp.ContentLength)
		}
		t.Logf("%s: %d bytes served, range and HEAD right", filepath.Base(u.Path), len(file))

		// Tampered: another signature, another file under this signature.
		q := u.Query()
		sig := q.Get("signature")
		q.Set("signature", strings.Map(func(r rune) rune {
			if r == 'A' {
				return 'B'
			}
			return 'A'
		}, sig[:1])+sig[1:])
		tampered := *u
		tampered.RawQuery = q.Encode()
		refused(t, tampered.String(), 403, "altered")
		other := *u
		other.Path = strings.Replace(u.Path, ".flv", ".mp4", 1)
		refused(t, other.String(), 403, "altered")

		// Expired: a link livehooks' own key signed, with its time gone.
		key, err := fileserve.LoadKey(dataDir, nil)
		if err != nil {
			t.Fatal(err)
		}
		signer, _ := fileserve.NewSigner(key)
		realPath := filepath.Join(realRec, filepath.Base(u.Path))
		expired := lh.base + "/recordings/" + project + realPath + "?" +
			signer.Query(fileserve.Link{Project: project, Path: realPath, Expires: time.Now().Add(-time.Second)})
		refused(t, expired, 403, "expired")
		fresh := lh.base + "/recordings/" + project + realPath + "?" +
			signer.Query(fileserve.Link{Project: project, Path: realPath, Expires: time.Now().Add(time.Minute)})
		if resp, body := fetch(t, "GET", fresh, ""); resp.StatusCode != 200 || !bytes.Equal(body, file) {
			t.Fatalf("the same link with a later expiry: %d", resp.StatusCode)
		}
	}
	resp, body := fetch(t, "GET", lh.base+"/metrics", "")
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`livehooks_recording_downloads_total{outcome="served"}`)) ||
		!bytes.Contains(body, []byte(`livehooks_recording_downloads_total{outcome="expired"}`)) ||
		!bytes.Contains(body, []byte("livehooks_recording_download_bytes_total")) {
		t.Fatalf("metrics lack the downloads:\n%s", body)
	}
	verifySignatures(t, callbackKey, rcv.callbacks())
	if log := lh.stderr.String(); strings.Contains(log, "signature=") {
		t.Error("a download link's signature is in livehooks' log")
	}
}

func fetch(t *testing.T, method, link, rng string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, link, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// refused checks a Huawei-format refusal.
func refused(t *testing.T, link string, status int, msg string) {
	t.Helper()
	resp, body := fetch(t, "GET", link, "")
	var e struct {
		Code string `json:"error_code"`
		Msg  string `json:"error_msg"`
	}
	if resp.StatusCode != status || json.Unmarshal(body, &e) != nil || e.Code == "" || !strings.Contains(e.Msg, msg) {
		t.Fatalf("%s: %d %s, want %d and an error saying %q", link, resp.StatusCode, body, status, msg)
	}
}
