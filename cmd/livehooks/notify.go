package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/livehooks/livehooks/source/mediamtx"
)

type notifyOptions struct {
	url          string
	project      string
	secret       string
	domain       string
	timeout      time.Duration
	recordFormat string // mediamtx
}

func newNotifyCommand(e *env) *cobra.Command {
	o := &notifyOptions{}
	cmd := &cobra.Command{
		Use:   "notify",
		Short: "Post a media server's event to livehooks (run from a media-server hook)",
		Long: `Post a media server's event to a livehooks server's /hooks/{source}/{project}
endpoint, authenticated by the project's ingest secret (sent in the
X-Livehooks-Secret header, never in the URL). For media servers that run a
command on events instead of calling a URL.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.url, "url", "http://127.0.0.1:8080", "base URL of the livehooks server")
	pf.StringVar(&o.project, "project", "", "project id (required)")
	pf.StringVar(&o.secret, "secret", "", "the project's ingest secret (required; see livehooks creds)")
	pf.StringVar(&o.domain, "domain", "", "publish domain of the streams (default: this machine's host name)")
	pf.DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to wait for livehooks")
	for name, variable := range map[string]string{
		"url": "LIVEHOOKS_URL", "project": "LIVEHOOKS_PROJECT", "secret": "LIVEHOOKS_INGEST_SECRET",
		"domain": "LIVEHOOKS_DOMAIN", "timeout": "LIVEHOOKS_NOTIFY_TIMEOUT",
	} {
		envFlag(pf, name, variable)
	}

	mtx := &cobra.Command{
		Use:   "mediamtx {available|unavailable|segment-complete}",
		Short: "Post a MediaMTX hook (runOnAvailable, runOnUnavailable, runOnRecordSegmentComplete)",
		Long: `Post a MediaMTX hook to livehooks. MediaMTX runs it with the stream in its
environment: MTX_PATH (split into app and stream at its last slash; a path
without a slash is a stream of the app "live"), MTX_QUERY, MTX_SOURCE_TYPE,
MTX_SOURCE_ID, RTSP_PORT, and for segment-complete MTX_SEGMENT_PATH (made
absolute against MediaMTX's working directory) and MTX_SEGMENT_DURATION.

A complete mediamtx.yml (settings it does not name keep MediaMTX's defaults;
without a "paths" entry MediaMTX refuses every publish with "path is not
configured", so merge pathDefaults into the shipped mediamtx.yml or keep the
all_others line):

  pathDefaults:
    record: yes
    recordPath: /var/lib/mediamtx/rec/%path/%Y-%m-%d_%H-%M-%S-%f
    runOnAvailable: livehooks notify mediamtx available
    runOnUnavailable: livehooks notify mediamtx unavailable
    runOnRecordSegmentComplete: livehooks notify mediamtx segment-complete
  paths:
    all_others:

with LIVEHOOKS_URL, LIVEHOOKS_PROJECT, LIVEHOOKS_INGEST_SECRET and
LIVEHOOKS_DOMAIN in MediaMTX's environment (or the flags on each line). MediaMTX
does not tell its hooks the recordFormat: with "recordFormat: mpegts", also set
LIVEHOOKS_RECORD_FORMAT=mpegts (--record-format), so that the callbacks say
HLS from the start rather than MP4.

MediaMTX before v1.20 names the first two hooks runOnReady and runOnNotReady
(v1.20 still reads them, with a deprecation warning): the events "ready" and
"not-ready" are accepted as the same as "available" and "unavailable".

MediaMTX ignores a hook's exit code: when livehooks refuses a stream
(reject_unknown_streams), MediaMTX still publishes and records it; this
command prints livehooks' answer on stderr and exits 1, and livehooks sends
no callback for the stream.`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: mediamtx.Events,
		RunE: func(cmd *cobra.Command, args []string) error {
			return notifyMediaMTX(cmd.Context(), e, o, args[0])
		},
	}
	mtx.Flags().StringVar(&o.recordFormat, "record-format", "", "MediaMTX's recordFormat, fmp4 (MediaMTX's default) or mpegts: the record_format of the stream's callbacks before its first segment")
	envFlag(mtx.Flags(), "record-format", "LIVEHOOKS_RECORD_FORMAT")
	cmd.AddCommand(mtx)
	return cmd
}

func notifyMediaMTX(ctx context.Context, e *env, o *notifyOptions, event string) error {
	if !mediamtx.ValidEvent(event) {
		return fmt.Errorf("event %q: want available, unavailable or segment-complete (or MediaMTX's older names ready, not-ready)", event)
	}
	if _, ok := mediamtx.Format(o.recordFormat); !ok {
		return fmt.Errorf("--record-format %q: want fmp4 or mpegts, as recordFormat in mediamtx.yml", o.recordFormat)
	}
	n := mediamtx.Notification{
		Event: event, Path: e.getenv("MTX_PATH"), Domain: o.domain, RecordFormat: o.recordFormat, Query: e.getenv("MTX_QUERY"),
		SourceType: e.getenv("MTX_SOURCE_TYPE"), SourceID: e.getenv("MTX_SOURCE_ID"), RTSPPort: e.getenv("RTSP_PORT"),
	}
	if n.Path == "" {
		return fmt.Errorf("MTX_PATH is not set: run this from MediaMTX's runOnAvailable, runOnUnavailable or runOnRecordSegmentComplete")
	}
	if event == mediamtx.EventSegmentComplete {
		n.SegmentPath, n.SegmentDuration = e.getenv("MTX_SEGMENT_PATH"), e.getenv("MTX_SEGMENT_DURATION")
		if n.SegmentPath == "" {
			return fmt.Errorf("MTX_SEGMENT_PATH is not set: run this from MediaMTX's runOnRecordSegmentComplete")
		}
		// MediaMTX's recordPath is relative to its working directory,
		// which this command inherits.
		if !filepath.IsAbs(n.SegmentPath) {
			abs, err := filepath.Abs(n.SegmentPath)
			if err != nil {
				return fmt.Errorf("MTX_SEGMENT_PATH: %w", err)
			}
			n.SegmentPath = abs
		}
	}
	if n.Domain == "" {
		host, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("--domain not given and no host name: %w", err)
		}
		n.Domain = strings.ToLower(host)
	}
	return postHook(ctx, o, "mediamtx", n)
}

// postHook posts body as JSON to {url}/hooks/{source}/{project}.
func postHook(ctx context.Context, o *notifyOptions, source string, body any) error {
	if o.project == "" {
		return fmt.Errorf("--project is required (or LIVEHOOKS_PROJECT)")
	}
	if o.secret == "" {
		return fmt.Errorf("--secret is required (or LIVEHOOKS_INGEST_SECRET); livehooks creds shows the ingest secret")
	}
	base, err := url.Parse(o.url)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return fmt.Errorf("--url %q: want http(s)://HOST[:PORT] of the livehooks server", o.url)
	}
	base.Path = strings.TrimSuffix(base.Path, "/") + "/hooks/" + source + "/" + url.PathEscape(o.project)
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base.String(), bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Livehooks-Secret", o.secret)
	req.Header.Set("User-Agent", "livehooks-notify/"+version)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("post to %s: %w", base.Redacted(), err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("livehooks answered %d: %s", resp.StatusCode, strings.TrimSpace(string(answer)))
	}
	return nil
}
