package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The console's browser tests drive Debian's chromium against a real
// livehooks binary and a real receiver. Each step saves a screenshot of the
// page it checked into the artefacts directory (LIVEHOOKS_ARTIFACTS, or
// e2e/testdata/artifacts) and runs axe-core's accessibility rules on it.

const consoleToken = "consoletoken0123456789abcdefghij"

// flakyReceiver answers 200, except for streams that start with "bad-" while
// failing is set: those get 400 (a failure that is not retried), and
// streams that start with "gone-": 410, which disables the config.
type flakyReceiver struct {
	srv     *httptest.Server
	failing atomic.Bool
	mu      sync.Mutex
	got     []string // "event_type stream"
}

func newFlakyReceiver(t *testing.T) *flakyReceiver {
	r := &flakyReceiver{}
	r.failing.Store(true)
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var m struct{ EventType, Stream string }
		body, _ := io.ReadAll(req.Body)
		_ = json.Unmarshal(body, &struct {
			EventType *string `json:"event_type"`
			Stream    *string `json:"stream"`
		}{&m.EventType, &m.Stream})
		r.mu.Lock()
		r.got = append(r.got, m.EventType+" "+m.Stream)
		r.mu.Unlock()
		if strings.HasPrefix(m.Stream, "gone-") {
			w.WriteHeader(http.StatusGone)
			return
		}
		if strings.HasPrefix(m.Stream, "bad-") && r.failing.Load() {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"stream refused by the receiver"}`)
			return
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *flakyReceiver) count(what string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, g := range r.got {
		if g == what {
			n++
		}
	}
	return n
}

func requireChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("CI is set and chromium is not installed (apt-get install chromium)")
	}
	t.Skip("skipping the console's browser tests: chromium is not installed (apt-get install chromium); with CI=true this fails instead")
	return ""
}

func artifactsDir(t *testing.T) string {
	dir := os.Getenv("LIVEHOOKS_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("testdata", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser is one headless chromium tab.
type browser struct {
	t     *testing.T
	ctx   context.Context
	base  string
	shots string
}

func newBrowser(t *testing.T, base string) *browser {
	exe := requireChromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &browser{t: t, ctx: ctx, base: base, shots: artifactsDir(t)}
}

// run runs actions with a deadline and fails the test with a screenshot of
// the page when they fail.
func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail(what, err)
	}
}

func (b *browser) fail(what string, err error) {
	b.t.Helper()
	b.screenshot("failed-" + what)
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	b.t.Fatalf("%s: %v\npage text:\n%s", what, err, text)
}

// eval evaluates a script in the page and returns its value; a promise is
// awaited.
func eval[T any](b *browser, what, script string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](script, chromedp.EvalAwaitPromise))
	if err != nil {
		b.fail(what, err)
	}
	return v
}

// screenshot saves the page as <name>.png in the artefacts directory.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(b.shots, "console-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
}

// check saves a screenshot of the page it checked and runs axe-core on it.
func (b *browser) check(name string) {
	b.t.Helper()
	b.screenshot(name)
	b.axe(name)
}

var axeSource = sync.OnceValues(func() (string, error) {
	src, err := os.ReadFile(filepath.Join("testdata", "axe-core-4.10.2", "axe.min.js"))
	return string(src), err
})

// axe runs axe-core's WCAG A and AA rules on the page and fails on any
// violation.
func (b *browser) axe(name string) {
	b.t.Helper()
	src, err := axeSource()
	if err != nil {
		b.t.Fatal(err)
	}
	eval[chromedp.Void](b, "load axe-core", src+";0")
	out := eval[string](b, "axe "+name, `(async () => {
		const r = await axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}});
		return JSON.stringify(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(" ") + ": " + n.failureSummary)})));
	})()`)
	var violations []struct {
		ID, Impact, Help string
		Nodes            []string
	}
	if err := json.Unmarshal([]byte(out), &violations); err != nil {
		b.t.Fatalf("axe %s: %v: %s", name, err, out)
	}
	for _, v := range violations {
		b.t.Errorf("accessibility (%s) on %s: %s [%s] %s", v.Impact, name, v.ID, v.Help, strings.Join(v.Nodes, "; "))
	}
}

// waitText waits until the element sel's text contains want.
func waitText(sel, want string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.innerText.includes(%q); })()`, sel, want),
		chromedp.WithPollingInterval(50*time.Millisecond))
}

func setValue(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.SetValue(chromedp.CSS(sel), value)
}

func click(sel string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.CSS(sel)) }

func visible(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(sel))
}

// waitDelivery waits until the project's delivery log has a match for query.
func waitDelivery(t *testing.T, lh *livehooks, query string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(string(lh.api(t, "GET", "/v1/p1/record/deliveries"+query, consoleToken, nil, http.StatusOK)), "delivery_id") {
		if time.Now().After(deadline) {
			t.Fatalf("no delivery matches %s", query)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestConsole(t *testing.T) {
	b := newBrowser(t, "")
	recv := newFlakyReceiver(t)
	lh := startLivehooks(t, "--token", consoleToken+":p1", "--allow-callback-cidr", "127.0.0.0/8")
	b.base = lh.base
	post := func(stream, typ string) {
		lh.api(t, "POST", "/v1/p1/record/events", consoleToken, map[string]any{
			"event_type": typ, "publish_domain": "push.example.com", "app": "live", "stream": stream,
			"file_size": 1048576, "record_duration": 61, "width": 1280, "height": 720, "record_format": "FLV",
			"download_url": "https://cdn.example.com/live/" + stream + ".flv",
		}, http.StatusAccepted)
	}
	start := time.Now()

	t.Run("wrong token", func(t *testing.T) {
		b.t = t
		b.run("sign-in page",
			chromedp.Navigate(lh.base+"/console/"),
			visible("#project_id"),
			setValue("#project_id", "p1"), setValue("#token", "not-the-token"),
			click("#signin-submit"),
			waitText(".signin-error", "Sign-in failed"))
		// Only the chosen credential's fields, and no sign-out, are shown.
		if shown := eval[string](b, "visible fields", `[...document.querySelectorAll("input, button")].filter(e => e.offsetParent !== null).map(e => e.id || e.value).join(" ")`); shown != "project_id token aksk token signin-submit" {
			t.Errorf("visible on the sign-in page: %q", shown)
		}
		b.check("signin-error")
	})

	t.Run("sign in", func(t *testing.T) {
		b.t = t
		b.run("sign in",
			setValue("#token", consoleToken), click("#signin-submit"),
			waitText("#page-title", "Callback configs"),
			waitText("#who-text", "Project p1"))
		b.check("configs-empty")
	})

	t.Run("validation error next to the field", func(t *testing.T) {
		b.t = t
		b.run("new config",
			click(`a[href="#/configs/new"]`),
			visible("#publish_domain"),
			setValue("#publish_domain", "push.example.com"), setValue("#app", "*"),
			setValue("#notify_callback_url", "ftp://"+strings.TrimPrefix(recv.srv.URL, "http://")+"/cb"),
			click("#config-save"),
			waitText("#notify_callback_url-error", "notify_callback_url must start with http:// or https://"))
		invalid := eval[string](b, "aria-invalid", `document.querySelector("#notify_callback_url").getAttribute("aria-invalid")`)
		if invalid != "true" {
			t.Errorf("the URL field is not marked invalid: %q", invalid)
		}
		b.check("config-validation-error")
	})

	var configID string
	t.Run("create and edit", func(t *testing.T) {
		b.t = t
		b.run("create",
			setValue("#notify_callback_url", recv.srv.URL+"/cb"),
			setValue("#key", "abcdefghij0123456789ABCDEFGHIJ0123"),
			click("#config-save"),
			waitText("#page-title", "Config push.example.com / *"))
		hash := eval[string](b, "id", `location.hash`)
		configID = strings.TrimPrefix(hash, "#/configs/")
		if len(configID) != 32 {
			t.Fatalf("config id from %q", hash)
		}
		b.run("edit",
			click(`a[href="#/configs/`+configID+`/edit"]`),
			visible(`input[name="sub"][value="RECORD_START"]`),
			click(`input[name="sub"][value="RECORD_START"]`),
			click("#config-save"),
			waitText("main dl", "RECORD_START, RECORD_FILE_COMPLETE"))
		// The key stays write-only: nothing on the page shows it.
		html := eval[string](b, "page html", `document.documentElement.outerHTML`)
		if strings.Contains(html, "abcdefghij0123456789ABCDEFGHIJ0123") {
			t.Error("the page shows the key")
		}
		b.check("config-detail")
	})

	t.Run("live", func(t *testing.T) {
		b.t = t
		b.run("live page",
			click(`a[href="#/live"]`),
			waitText("#feed-state", "Connected"))
		post("cam1", "RECORD_FILE_COMPLETE")
		post("bad-cam", "RECORD_FILE_COMPLETE")
		b.run("events arrive",
			waitText("#feed", "RECORD_FILE_COMPLETE"),
			waitText("#feed", "push.example.com/live/cam1"),
			waitText("#feed", "HTTP 200"),
			waitText("#feed", "HTTP 400"),
			waitText("#destinations", "Breaker"),
			waitText("#destinations", "1 failed"))
		b.check("live")
	})

	var failedID string
	t.Run("attempts and retry", func(t *testing.T) {
		b.t = t
		waitDelivery(t, lh, "?status=failed&stream=bad-cam")
		b.run("deliveries",
			chromedp.Navigate(lh.base+"/console/#/deliveries?callback_id="+configID+"&status=failed"),
			waitText("#deliveries tbody", "bad-cam"))
		b.check("deliveries-failed")
		b.run("open the failed delivery",
			click("#deliveries tbody a"),
			waitText("#attempts", "400"),
			waitText("#attempts", "stream refused by the receiver"),
			waitText("#why", "Failed for good"),
			click("details.request summary"),
			waitText("details.request", "Webhook-Signature: v1,"),
			waitText("details.request", `"auth_sign"`))
		failedID = eval[string](b, "delivery id", `location.hash.split("/").pop()`)
		b.check("delivery-attempts")
		recv.failing.Store(false)
		b.run("retry",
			click("#retry"),
			waitText("#retry-result", "Retry queued"))
		b.check("delivery-retried")
		waitDelivery(t, lh, "?status=succeeded&stream=bad-cam")
		if !strings.Contains(string(lh.api(t, "GET", "/v1/p1/record/deliveries/"+failedID, consoleToken, nil, http.StatusOK)), `"status":"failed"`) {
			t.Error("the retry changed the original delivery")
		}
		deadline := time.Now().Add(10 * time.Second)
		for recv.count("RECORD_FILE_COMPLETE bad-cam") < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("the retried delivery did not arrive")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("test event and replay", func(t *testing.T) {
		b.t = t
		b.run("test-send",
			chromedp.Navigate(lh.base+"/console/#/configs/"+configID),
			visible("#test-send"),
			click("#test-send"),
			waitText("#test-result", "The receiver answered 200"))
		before := recv.count("RECORD_FILE_COMPLETE cam1")
		b.run("replay",
			click("#replay-send"),
			visible("#confirm-ok"),
			click("#confirm-ok"),
			waitText("#replay-result", "deliveries queued"))
		b.check("config-test-and-replay")
		deadline := time.Now().Add(10 * time.Second)
		for recv.count("RECORD_FILE_COMPLETE cam1") <= before {
			if time.Now().After(deadline) {
				t.Fatalf("the replayed delivery did not arrive")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("recordings", func(t *testing.T) {
		b.t = t
		post("rec1", "RECORD_START")
		post("rec1", "RECORD_NEW_FILE_START")
		post("rec1", "RECORD_FILE_COMPLETE")
		b.run("recordings page",
			chromedp.Navigate(lh.base+"/console/#/recordings?domain=push.example.com"),
			waitText("#streams", "rec1"),
			waitText("main", "1.0 MiB"),
			waitText("main", "1280×720"),
			waitText("main", "1 min 1 s"))
		b.run("settings validation",
			setValue("#download_url_template", "ftp://cdn.example.com/{file}"),
			click("#domain-save"),
			waitText(`[data-field="download_url_template"] .error`, "download_url_template"))
		b.check("recordings-validation")
		b.run("settings saved",
			setValue("#download_url_template", "https://cdn.example.com/{app}/{stream}/{file}"),
			setValue("#max_pause_seconds", "60"),
			click("#domain-save"),
			waitText("#domain-settings", "Saved"))
		b.check("recordings")
		if got := string(lh.api(t, "GET", "/v1/p1/record/domains/push.example.com", consoleToken, nil, http.StatusOK)); !strings.Contains(got, `"max_pause_seconds":60`) {
			t.Errorf("settings not saved: %s", got)
		}
		b.run("delete settings",
			click("#domain-delete"),
			visible("#confirm-ok"),
			click("#confirm-ok"),
			waitText("#domain-settings", "no settings yet"))
		lh.api(t, "GET", "/v1/p1/record/domains/push.example.com", consoleToken, nil, http.StatusNotFound)
	})

	t.Run("disabled by 410 and enabled again", func(t *testing.T) {
		b.t = t
		post("gone-cam", "RECORD_FILE_COMPLETE")
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(string(lh.api(t, "GET", "/v1/p1/record/callbacks/"+configID, consoleToken, nil, http.StatusOK)), "disabled_reason") {
			if time.Now().After(deadline) {
				t.Fatal("the config was not disabled by the 410")
			}
			time.Sleep(50 * time.Millisecond)
		}
		b.run("see why",
			chromedp.Navigate(lh.base+"/console/#/configs/"+configID),
			waitText("main .notice", "Deliveries to this config are stopped"),
			waitText("main .notice", "410"))
		b.check("config-disabled")
		b.run("enable again",
			click("#reenable"),
			chromedp.Poll[chromedp.Void](`!document.querySelector("#reenable")`),
			waitText("#page-title", "Config push.example.com"))
		if got := string(lh.api(t, "GET", "/v1/p1/record/callbacks/"+configID, consoleToken, nil, http.StatusOK)); strings.Contains(got, "disabled_reason") {
			t.Errorf("still disabled: %s", got)
		}
	})

	t.Run("keyboard", func(t *testing.T) {
		b.t = t
		// The filter form submits with Enter; the confirmation dialog
		// closes with Escape and gives the focus back.
		b.run("filter by keyboard",
			chromedp.Navigate(lh.base+"/console/#/configs"),
			visible("#f-domain"),
			chromedp.Focus(chromedp.CSS("#f-domain")),
			chromedp.KeyEvent("push.example.com\r"),
			chromedp.Poll[chromedp.Void](`location.hash.includes("publish_domain=push.example.com")`),
			waitText("main table", "1 config"),
			click("main table a"),
			visible("#delete-config"),
			chromedp.Focus(chromedp.CSS("#delete-config")),
			chromedp.KeyEvent("\r"),
			visible("#confirm-ok"),
			chromedp.KeyEvent("\u001b"),
			chromedp.Poll[chromedp.Void](`!document.getElementById("confirm").open && document.activeElement.id === "delete-config"`))
		lh.api(t, "GET", "/v1/p1/record/callbacks/"+configID, consoleToken, nil, http.StatusOK)
	})

	t.Run("no delivery explained", func(t *testing.T) {
		b.t = t
		b.run("empty log",
			chromedp.Navigate(lh.base+"/console/#/deliveries?stream=nobody"),
			waitText("#no-delivery-hint", "no config took it"))
		b.check("deliveries-none")
	})

	t.Run("forged requests are refused", func(t *testing.T) {
		b.t = t
		// From the console's own page, a request without the CSRF header.
		status := eval[int](b, "no CSRF header", `fetch("/v1/p1/record/callbacks", {method: "POST", credentials: "same-origin",
			headers: {"Content-Type": "application/json"}, body: JSON.stringify({publish_domain: "forged.example.com", app: "x", notify_callback_url: "https://evil.example/cb"})}).then(r => r.status)`)
		if status != http.StatusUnauthorized {
			t.Errorf("POST without the CSRF header: %d, want 401", status)
		}
		// From another site's page: the browser sends the cookie
		// (127.0.0.1 on another port is the same site) but cannot send
		// the token.
		evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `<!doctype html><title>evil</title><script>
				fetch(%q, {method: "POST", credentials: "include", mode: "no-cors", headers: {"Content-Type": "text/plain"},
					body: JSON.stringify({publish_domain: "forged.example.com", app: "y", notify_callback_url: "https://evil.example/cb"})})
				.finally(() => { document.title = "sent"; });</script>`, lh.base+"/v1/p1/record/callbacks")
		}))
		defer evil.Close()
		b.run("evil page", chromedp.Navigate(evil.URL), chromedp.Poll[chromedp.Void](`document.title === "sent"`))
		list := lh.api(t, "GET", "/v1/p1/record/callbacks?publish_domain=forged.example.com", consoleToken, nil, http.StatusOK)
		if !strings.Contains(string(list), `"total":0`) {
			t.Errorf("a forged request created a config: %s", list)
		}
	})

	t.Run("delete", func(t *testing.T) {
		b.t = t
		b.run("delete",
			chromedp.Navigate(lh.base+"/console/#/configs/"+configID),
			visible("#delete-config"),
			click("#delete-config"),
			visible("#confirm-ok"))
		b.check("config-delete-confirm")
		b.run("confirm",
			click("#confirm-ok"),
			waitText("#page-title", "Callback configs"),
			waitText("main table", "0 configs"))
		lh.api(t, "GET", "/v1/p1/record/callbacks/"+configID, consoleToken, nil, http.StatusNotFound)
		b.check("configs-after-delete")
	})

	t.Run("sign out", func(t *testing.T) {
		b.t = t
		b.run("sign out", click("#signout"), waitText("main", "You are signed out"))
		status := eval[int](b, "API after sign-out", `fetch("/v1/p1/record/callbacks", {credentials: "same-origin"}).then(r => r.status)`)
		if status != http.StatusUnauthorized {
			t.Errorf("API after sign-out: %d", status)
		}
	})
	t.Logf("browser steps took %v", time.Since(start))
}
