package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/api"
	"github.com/livehooks/livehooks/auth"
	"github.com/livehooks/livehooks/egress"
	"github.com/livehooks/livehooks/objstore"
	"github.com/livehooks/livehooks/source"
	"github.com/livehooks/livehooks/source/mediamtx"
	"github.com/livehooks/livehooks/source/nginxrtmp"
	"github.com/livehooks/livehooks/source/srs"
)

// sources builds the media-server adapters served at /hooks/{source}/…,
// and the Source they share (close it after the HTTP server stops). single
// reports whether one tenant holds every ingest secret (source.RecordDirs);
// link makes the download links of files livehooks serves.
func sources(o *serveOptions, machine source.Machine, callbacks source.CallbackMatcher, jobs livehooks.FileJobStore, node string,
	allow []netip.Prefix, single func() bool, logger *slog.Logger, link func(livehooks.StreamKey, string, time.Duration) string) (map[string]http.Handler, *source.Source, error) {
	src, err := source.New(source.Options{
		Machine: machine, Callbacks: callbacks, Jobs: jobs, Node: node,
		Uploader:   objstore.New(objstore.Options{AllowCIDRs: allow, StallTimeout: o.uploadStallTimeout}),
		RecordDirs: o.recordDirs, SingleTenant: single, Logger: logger, HTTPClient: guardedClient(allow, o.connectTimeout), Link: link,
		UploadAttempts: o.uploadAttempts, UploadBackoff: o.uploadBackoff, UploadTimeout: o.uploadTimeout,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("--record-dir: %w", err)
	}
	if dirs := src.RecordDirs(); dirs.Len() == 0 {
		logger.Warn("no --record-dir: livehooks reads no recorder file, and every finished file (nginx-rtmp record_done, SRS on_dvr, MediaMTX segment) becomes RECORD_FAILED \"file outside the record directories\"; set --record-dir to the recorder's directory")
	} else {
		logger.Info("record directories", "record_dirs", dirs.String(), "single_tenant", single())
	}
	nginx, err := nginxrtmp.New(nginxrtmp.Options{Source: src, ControlURL: o.nginxControlURL})
	if err != nil {
		src.Close()
		return nil, nil, fmt.Errorf("--nginx-control-url: %w", err)
	}
	return map[string]http.Handler{
		"nginx-rtmp": nginx,
		"srs":        srs.New(src),
		"mediamtx":   mediamtx.New(src),
	}, src, nil
}

// guardedClient is the client of on-demand questions: their URLs are user
// input, so it refuses the networks callback deliveries refuse (checked at
// dial time, after DNS) unless --allow-callback-cidr opens them, uses no
// proxy and follows no redirect.
func guardedClient(allow []netip.Prefix, connectTimeout time.Duration) *http.Client {
	dialer := egress.Dialer(allow, connectTimeout)
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            dialer.DialContext,
			TLSHandshakeTimeout:    connectTimeout,
			MaxIdleConnsPerHost:    4,
			IdleConnTimeout:        90 * time.Second,
			MaxResponseHeaderBytes: egress.MaxResponseHeaderBytes,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// ingestSecrets checks media servers' ingest secrets: those of
// --ingest-secret when given, else the credentials file's (generated at first
// start unless credentials were given as flags), re-read when it changes
// ("livehooks creds rotate ingest-secret" applies within seconds). single
// reports whether the secrets name at most one project (`*` counts as one):
// then one tenant holds them all.
func ingestSecrets(o *serveOptions, logger *slog.Logger) (match api.IngestSecrets, single func() bool, err error) {
	if len(o.ingestSecrets) > 0 {
		var list []auth.IngestSecret
		for _, s := range o.ingestSecrets {
			is, err := auth.ParseIngestSecret(s)
			if err != nil {
				return nil, nil, fmt.Errorf("--ingest-secret: %w", err)
			}
			list = append(list, is)
		}
		one := oneProject(list)
		return func(project, secret string) bool { return auth.MatchIngestSecret(list, project, secret) }, func() bool { return one }, nil
	}
	f := &fileIngestSecrets{dataDir: o.dataDir, path: auth.Path(o.dataDir), logger: logger}
	if err := f.reload(); err != nil {
		return nil, nil, fmt.Errorf("ingest secrets: %w", err)
	}
	if len(f.secrets) == 0 && !o.dev {
		logger.Warn("no ingest secret: media-server hooks (/hooks/…) are refused; pass --ingest-secret PROJECT:SECRET or see livehooks creds", "path", f.path)
	}
	return f.match, f.single, nil
}

// oneProject reports whether the secrets name at most one project.
func oneProject(list []auth.IngestSecret) bool {
	for _, s := range list {
		if s.Project != list[0].Project {
			return false
		}
	}
	return true
}

type fileIngestSecrets struct {
	dataDir, path string
	logger        *slog.Logger

	mu      sync.Mutex
	checked time.Time
	mtime   time.Time
	secrets []auth.IngestSecret
}

// reload reads the credentials file if there is one; it never creates it.
func (f *fileIngestSecrets) reload() error {
	m := modTime(f.path)
	if m.IsZero() {
		f.secrets, f.mtime = nil, m
		return nil
	}
	file, _, err := auth.LoadOrCreate(f.dataDir)
	if err != nil {
		return err
	}
	f.secrets, f.mtime = file.IngestSecrets, m
	return nil
}

// single reports whether the secrets, as last read, name at most one
// project; a hook has just re-read them when they changed.
func (f *fileIngestSecrets) single() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return oneProject(f.secrets)
}

func (f *fileIngestSecrets) match(project, secret string) bool {
	f.mu.Lock()
	if now := time.Now(); now.Sub(f.checked) > 2*time.Second {
		f.checked = now
		if !modTime(f.path).Equal(f.mtime) {
			if err := f.reload(); err != nil {
				f.logger.Warn("reload ingest secrets", "path", f.path, "error", err)
			} else {
				f.logger.Info("ingest secrets reloaded", "path", f.path, "ingest_secrets", len(f.secrets))
			}
		}
	}
	secrets := f.secrets
	f.mu.Unlock()
	return auth.MatchIngestSecret(secrets, project, secret)
}
