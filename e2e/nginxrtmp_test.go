package e2e

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	rtmpModule   = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
	project      = "p1"
	ingestSecret = "E2eIngestSecret1"
	token        = "e2e-token"
	callbackKey  = "E2eCallbackKey0123456789abcdefghij"
)

var allEvents = []string{"RECORD_START", "RECORD_NEW_FILE_START", "RECORD_FILE_COMPLETE", "RECORD_OVER", "RECORD_FAILED"}

func requireNginx(t *testing.T) {
	requirePrograms(t, []string{"nginx", "ffmpeg", "ffprobe"}, map[string]string{rtmpModule: "libnginx-mod-rtmp"})
}

type nginx struct {
	rtmp    string // rtmp://127.0.0.1:PORT
	control string // http://127.0.0.1:PORT/control
}

// startNginx writes an nginx.conf of its own (pid, logs and temp paths in
// dir) with one rtmp application "live" whose four hooks point at hook, and
// runs nginx in the foreground until the test ends.
func startNginx(t *testing.T, dir, recDir, record, hook string) *nginx {
	t.Helper()
	rtmpPort, httpPort := freePort(t), freePort(t)
	user := ""
	if os.Geteuid() == 0 {
		// Workers would run as nobody, who cannot write into the test's
		// directories.
		user = "user root;"
	}
	conf := fmt.Sprintf(`load_module %[1]s;
%[2]s
pid %[3]s/nginx.pid;
error_log %[3]s/nginx-error.log info;
worker_processes 1;
events { worker_connections 128; }
rtmp {
    server {
        listen 127.0.0.1:%[4]d;
        application live {
            live on;
            record %[5]s;
            record_path %[6]s;
            record_unique on;
            record_interval 5s;
            on_publish %[7]s;
            on_publish_done %[7]s;
            on_record_done %[7]s;
            on_done %[7]s;
        }
    }
}
http {
    access_log off;
    client_body_temp_path %[3]s/client_body;
    proxy_temp_path %[3]s/proxy;
    fastcgi_temp_path %[3]s/fastcgi;
    uwsgi_temp_path %[3]s/uwsgi;
    scgi_temp_path %[3]s/scgi;
    server {
        listen 127.0.0.1:%[8]d;
        location /control { rtmp_control all; }
    }
}
`, rtmpModule, user, dir, rtmpPort, record, recDir, hook, httpPort)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	cmd := exec.Command(lookPath("nginx"), "-p", dir+"/", "-c", confPath, "-e", filepath.Join(dir, "nginx-error.log"), "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	errorLog := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "nginx-error.log"))
		return out.String() + string(b)
	}
	t.Cleanup(func() {
		stopProcess(cmd, done)
		if t.Failed() {
			t.Logf("nginx log:\n%s", errorLog())
		}
	})
	waitPort(t, fmt.Sprintf("127.0.0.1:%d", rtmpPort), done, errorLog)
	return &nginx{rtmp: fmt.Sprintf("rtmp://127.0.0.1:%d", rtmpPort), control: fmt.Sprintf("http://127.0.0.1:%d/control", httpPort)}
}

// TestNginxRTMP publishes with ffmpeg through Debian's nginx-rtmp and checks
// the exact callbacks: a 12 s publish (two ~6 s files), a republish within
// the maximum pause (same task), RECORD_OVER after the pause, a publish after
// it (new task).
func TestNginxRTMP(t *testing.T) {
	requireNginx(t)
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const domain = "push.example.com"
	tmp := t.TempDir()
	recDir := filepath.Join(tmp, "rec")
	if err := os.Mkdir(recDir, 0o755); err != nil {
		t.Fatal(err)
	}
	rcv := newReceiver(t)
	lh := startLivehooks(t, "--allow-callback-cidr", "127.0.0.0/8", "--record-dir", recDir,
		"--ingest-secret", project+":"+ingestSecret, "--token", token+":"+project)
	lh.api(t, "PUT", "/v1/"+project+"/record/domains/"+domain, token, map[string]any{
		"record_format": "FLV", "max_pause_seconds": 5, "download_url_template": "http://dl.example.com/{app}/{stream}/{file}"}, 201)
	lh.api(t, "POST", "/v1/"+project+"/record/callbacks", token, map[string]any{
		"publish_domain": domain, "app": "live", "notify_callback_url": rcv.srv.URL + "/cb",
		"notify_event_subscription": allEvents, "sign_type": "HMACSHA256", "key": callbackKey}, 201)
	// The publishers connect to 127.0.0.1: the hook URL names the domain.
	ng := startNginx(t, tmp, recDir, "all", lh.base+"/hooks/nginx-rtmp/"+project+"?secret="+ingestSecret+"&domain="+domain)
	url := ng.rtmp + "/live/cam1"

	seen := map[string]bool{}
	var sessions [][]string
	publish(ctx, t, url, 12*time.Second)
	sessions = append(sessions, newFiles(t, recDir, seen))
	time.Sleep(1100 * time.Millisecond) // the publisher is away for a moment (nginx names files by the second)
	publish(ctx, t, url, 4*time.Second)
	sessions = append(sessions, newFiles(t, recDir, seen))
	rcv.waitFor(t, 20*time.Second, "RECORD_OVER", func(c []callback) bool { return count(c, "RECORD_OVER") == 1 })
	publish(ctx, t, url, 3*time.Second)
	sessions = append(sessions, newFiles(t, recDir, seen))
	rcv.waitFor(t, 20*time.Second, "second RECORD_OVER", func(c []callback) bool { return count(c, "RECORD_OVER") == 2 })
	cbs := rcv.callbacks()
	t.Logf("callbacks:\n%s", render(cbs))

	// The expected sequence, from the files nginx wrote in each session (a
	// trailing file without media gives no event).
	type probed struct {
		size          int64
		dur           float64
		width, height int
	}
	files := map[string]probed{}
	var want []string
	job := 0
	taskOf := []int{1, 1, 2} // the republish within the pause continues task 1
	for i, names := range sessions {
		task := taskOf[i]
		if i != 1 {
			want = append(want, fmt.Sprintf("RECORD_START t%d", task))
		}
		for _, name := range names {
			fi, err := os.Stat(filepath.Join(recDir, name))
			if err != nil {
				t.Fatal(err)
			}
			p := probed{size: fi.Size()}
			if fi.Size() > 1024 {
				p.dur, p.width, p.height = ffprobe(t, filepath.Join(recDir, name))
			}
			t.Logf("session %d: %s %d bytes, ffprobe %.3f s %dx%d", i+1, name, p.size, p.dur, p.width, p.height)
			if p.width == 0 {
				continue
			}
			files[name] = p
			job++
			want = append(want, fmt.Sprintf("RECORD_NEW_FILE_START t%d/j%d", task, job),
				fmt.Sprintf("RECORD_FILE_COMPLETE t%d/j%d %s", task, job, name))
		}
		if i != 0 {
			want = append(want, fmt.Sprintf("RECORD_OVER t%d", task))
		}
	}
	if n := len(sessions[0]); n < 2 {
		t.Fatalf("the 12 s publish left %d files, want at least 2 (record_interval 5s)", n)
	}

	// What came, with ids renamed in order of appearance.
	tasks, jobs := map[string]string{}, map[string]string{}
	name := func(m map[string]string, prefix, id string) string {
		if _, ok := m[id]; !ok {
			m[id] = fmt.Sprintf("%s%d", prefix, len(m)+1)
		}
		return m[id]
	}
	var got []string
	for _, c := range cbs {
		line := c.str("event_type") + " " + name(tasks, "t", c.str("task_id"))
		if j := c.str("job_id"); j != "" {
			line += "/" + name(jobs, "j", j)
		}
		if c.str("event_type") == "RECORD_FILE_COMPLETE" {
			line += " " + path.Base(c.str("download_url"))
		}
		got = append(got, line)
		if c.str("project_id") != project || c.str("publish_domain") != domain || c.str("app") != "live" || c.str("stream") != "cam1" {
			t.Errorf("callback of another stream: %s", c.body)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("callbacks:\n%s\n\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Each file's figures are the file's, as ffprobe sees it.
	for _, c := range cbs {
		if c.str("event_type") != "RECORD_FILE_COMPLETE" {
			continue
		}
		f := files[path.Base(c.str("download_url"))]
		if c.num("file_size") != f.size || c.num("width") != int64(f.width) || c.num("height") != int64(f.height) ||
			math.Abs(float64(c.num("record_duration"))-f.dur) > 1 || c.str("record_format") != "FLV" {
			t.Errorf("%s: size %d, duration %d s, %dx%d; the file: %d bytes, ffprobe %.3f s, %dx%d",
				c.str("download_url"), c.num("file_size"), c.num("record_duration"), c.num("width"), c.num("height"), f.size, f.dur, f.width, f.height)
		}
		if c.num("width") != 1280 || c.num("height") != 720 {
			t.Errorf("picture %dx%d, want the published 1280x720", c.num("width"), c.num("height"))
		}
		start, end := c.str("start_time"), c.str("end_time")
		if start == "" || end == "" || end < start || c.str("asset_id") == "" {
			t.Errorf("times/asset of %s", c.body)
		}
	}
	verifySignatures(t, callbackKey, cbs)
	if strings.Contains(lh.stderr.String(), ingestSecret) || strings.Contains(lh.stderr.String(), callbackKey) {
		t.Error("a secret is in livehooks' log")
	}
	t.Logf("end-to-end test took %s", time.Since(began).Round(100*time.Millisecond))
}

// TestNginxRTMPOnDemand: with "record all manual", livehooks asks the
// config's on-demand URL at publish and starts nginx's recorder through its
// control module only for the streams the answer says to record.
func TestNginxRTMPOnDemand(t *testing.T) {
	requireNginx(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const domain = "ondemand.example.com"
	tmp := t.TempDir()
	recDir := filepath.Join(tmp, "rec")
	if err := os.Mkdir(recDir, 0o755); err != nil {
		t.Fatal(err)
	}
	rcv := newReceiver(t)
	rcv.onDemand = func(stream string) string { return fmt.Sprintf(`{"record": %v}`, stream == "yes") }
	// nginx's control port is known only once nginx is configured; livehooks
	// needs it at start: configure nginx first, with the hook URL of a
	// livehooks port reserved now.
	lhPort := freePort(t)
	ng := startNginx(t, tmp, recDir, "all manual",
		fmt.Sprintf("http://127.0.0.1:%d/hooks/nginx-rtmp/%s?secret=%s&domain=%s", lhPort, project, ingestSecret, domain))
	lh := startLivehooksOn(t, fmt.Sprintf("127.0.0.1:%d", lhPort), "--allow-callback-cidr", "127.0.0.0/8", "--record-dir", recDir,
		"--ingest-secret", project+":"+ingestSecret, "--token", token+":"+project, "--nginx-control-url", ng.control)
	lh.api(t, "PUT", "/v1/"+project+"/record/domains/"+domain, token, map[string]any{"max_pause_seconds": 1}, 201)
	lh.api(t, "POST", "/v1/"+project+"/record/callbacks", token, map[string]any{
		"publish_domain": domain, "app": "live", "notify_callback_url": rcv.srv.URL + "/cb", "on_demand_callback_url": rcv.srv.URL + "/ondemand",
		"notify_event_subscription": allEvents, "key": callbackKey}, 201)

	// Both at once; a keyframe every second, since a recorder started
	// through the control module begins at a keyframe.
	errc := make(chan error, 1)
	go func() { errc <- ffmpegPublish(ctx, ng.rtmp+"/live/no", 4*time.Second, 25) }()
	if err := ffmpegPublish(ctx, ng.rtmp+"/live/yes", 4*time.Second, 25); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	rcv.waitFor(t, 15*time.Second, "RECORD_OVER", func(c []callback) bool { return count(c, "RECORD_OVER") == 1 })
	cbs := rcv.callbacks()
	t.Logf("callbacks:\n%s", render(cbs))
	var got []string
	for _, c := range cbs {
		got = append(got, c.str("event_type")+" "+c.str("stream"))
	}
	want := "RECORD_START yes,RECORD_NEW_FILE_START yes,RECORD_FILE_COMPLETE yes,RECORD_OVER yes"
	if strings.Join(got, ",") != want {
		t.Fatalf("callbacks %v, want %s", got, want)
	}
	entries, _ := os.ReadDir(recDir)
	if len(entries) != 1 || !strings.HasPrefix(entries[0].Name(), "yes-") {
		t.Fatalf("recorded files %v, want one of the stream yes", entries)
	}
	dur, w, h := ffprobe(t, filepath.Join(recDir, entries[0].Name()))
	fc := cbs[2]
	if fc.num("width") != int64(w) || fc.num("height") != int64(h) || math.Abs(float64(fc.num("record_duration"))-dur) > 1 {
		t.Fatalf("file complete %s; ffprobe %.3f s %dx%d", fc.body, dur, w, h)
	}
	verifySignatures(t, callbackKey, cbs)
}
