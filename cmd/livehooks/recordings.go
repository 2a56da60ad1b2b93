package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/fileserve"
	"github.com/livehooks/livehooks/metrics"
)

// recordingFiles builds, for a server listening at addr, what serves finished recordings when a domain has
// neither a URL template nor object storage: the link signer and handler,
// and the list of served files that --served-recordings-max-bytes trims
// (run it with Index.Run; close it at the end).
// jobs tells which files a pending file job still needs: the cap keeps them.
func recordingFiles(o *serveOptions, addr string, getenv func(string) string, tls bool, resolve fileserve.Resolver, jobs livehooks.FileJobStore, m *metrics.Metrics, logger *slog.Logger) (*fileserve.Server, *fileserve.Index, error) {
	public := o.publicURL
	if public == "" {
		var wildcard bool
		public, wildcard = defaultPublicURL(addr, tls)
		if wildcard {
			logger.Warn("recordings are served under a URL derived from the --listen wildcard address and the hostname; set --public-url to the address receivers reach", "public_url", public)
		}
	}
	maxBytes, err := parseSize(o.servedMaxBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("--served-recordings-max-bytes: %w", err)
	}
	key, err := fileserve.LoadKey(o.dataDir, getenv)
	if err != nil {
		return nil, nil, err
	}
	busy := func(path string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		pending, err := jobs.FileJobPending(ctx, path)
		if err != nil {
			logger.Warn("served recording kept: its jobs cannot be looked up", "path", path, "error", err)
			return true
		}
		return pending
	}
	index, err := fileserve.OpenIndex(fileserve.IndexOptions{DataDir: o.dataDir, MaxBytes: maxBytes, Resolve: resolve, Busy: busy, Logger: logger})
	if err != nil {
		return nil, nil, err
	}
	files, err := fileserve.New(fileserve.Options{PublicURL: public, Key: key, Resolve: resolve, Index: index, Metrics: m})
	if err != nil {
		index.Close()
		return nil, nil, fmt.Errorf("--public-url: %w", err)
	}
	logger.Info("recordings without a URL template or storage are served by livehooks", "public_url", public, "served_recordings_max_bytes", maxBytes)
	return files, index, nil
}

// linker adapts a fileserve.Server to source.Options.Link; files is set
// once the server exists (it needs the Source's resolver).
func linker(files **fileserve.Server) func(livehooks.StreamKey, string, time.Duration) string {
	return func(key livehooks.StreamKey, realPath string, expiry time.Duration) string {
		return (*files).Link(key.ProjectID, realPath, expiry)
	}
}

// defaultPublicURL derives the URL receivers use from --listen; wildcard
// says that the listen address named no host (the hostname stands in).
func defaultPublicURL(listen string, tls bool) (url string, wildcard bool) {
	scheme := "http"
	if tls {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return scheme + "://" + listen, false
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		wildcard = true
		if host, err = os.Hostname(); err != nil || host == "" {
			host = "localhost"
		}
	}
	return scheme + "://" + net.JoinHostPort(host, port), wildcard
}

// parseSize reads a byte count: digits with an optional K, M, G or T
// (powers of 1024, an optional "iB" or "B" after it); 0 means no cap.
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	shift := 0
	if n := len(t); n > 0 {
		if i := strings.IndexByte("KMGT", t[n-1]); i >= 0 {
			shift, t = 10*(i+1), t[:n-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)>>shift {
		return 0, fmt.Errorf("%q is not a size such as 50G, 500M or 1073741824", s)
	}
	return n << shift, nil
}
