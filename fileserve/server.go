package fileserve

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/livehooks/livehooks"
)

// Resolver returns the real path (symlinks resolved) of a file of a project
// when it lies inside one of that project's record directories, and an
// error otherwise. The check runs at serve time, so a link never outlives a
// change of the record directories or of the symlinks under them.
type Resolver func(projectID, path string) (realPath string, err error)

// Metrics counts what the server does; *metrics.Metrics implements it.
type Metrics interface {
	// RecordingServed counts one answer by outcome (served, not_modified,
	// bad_range, unsigned, bad_signature, expired, not_found) and the body
	// bytes written.
	RecordingServed(outcome string, bytes int64)
}

// Options configure a Server.
type Options struct {
	// PublicURL is how receivers reach livehooks: scheme://host[:port][/prefix].
	PublicURL string
	// Key signs the links (LoadKey).
	Key     []byte
	Resolve Resolver
	// Index, when set, learns every linked file (for the space cap).
	Index   *Index
	Metrics Metrics
	Clock   livehooks.Clock
}

// Server makes download links and answers them. It is safe for concurrent use.
type Server struct {
	base    string
	signer  *Signer
	resolve Resolver
	index   *Index
	metrics Metrics
	clock   livehooks.Clock
}

// maxPlaylist bounds an HLS playlist that is read to sign its segments; a
// recording's playlist of 10-second segments stays far below it for days.
const maxPlaylist = 8 << 20

// maxAge caps Cache-Control's max-age (a link that never expires).
const maxAge = 365 * 24 * time.Hour

// New returns a Server.
func New(o Options) (*Server, error) {
	u, err := url.Parse(o.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("public URL %q: want http(s)://host[:port][/path]", o.PublicURL)
	}
	if o.Resolve == nil {
		return nil, errors.New("fileserve: Options.Resolve is required")
	}
	signer, err := NewSigner(o.Key)
	if err != nil {
		return nil, err
	}
	if o.Clock == nil {
		o.Clock = livehooks.SystemClock{}
	}
	return &Server{base: strings.TrimRight(o.PublicURL, "/"), signer: signer, resolve: o.Resolve, index: o.Index, metrics: o.Metrics, clock: o.Clock}, nil
}

// Link returns the download URL of a project's file, valid for expiry (0:
// forever), and tells the Index (of an HLS playlist, also of the files it
// names). realPath is the file's real path, inside the project's record
// directories.
func (s *Server) Link(projectID, realPath string, expiry time.Duration) string {
	l := Link{Project: projectID, Path: realPath}
	if expiry > 0 {
		l.Expires = s.clock.Now().Add(expiry).Truncate(time.Second)
	}
	if s.index != nil {
		s.index.Add(projectID, realPath)
		for _, p := range playlistFiles(realPath) {
			s.index.Add(projectID, p)
		}
	}
	return s.url(l)
}

// playlistFiles returns the files an HLS playlist names next to it (its
// segments), nil for any other file.
func playlistFiles(p string) []string {
	if !isPlaylist(p) {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	body, err := io.ReadAll(io.LimitReader(f, maxPlaylist))
	if err != nil {
		return nil
	}
	var files []string
	RewritePlaylist(body, func(ref string) string {
		files = append(files, path.Join(path.Dir(p), ref))
		return ""
	})
	return files
}

func (s *Server) url(l Link) string {
	return s.base + PathPrefix + url.PathEscape(l.Project) + escapePath(l.Path) + "?" + s.signer.Query(l)
}

// ServeRecording answers GET or HEAD of a download link: filePath is the
// URL path after /recordings/{project_id}, decoded (it starts with "/").
// An error comes before anything is written: EDENIED for an unsigned,
// altered or expired link, ENOTFOUND for a file that is gone or outside the
// project's record directories.
func (s *Server) ServeRecording(w http.ResponseWriter, r *http.Request, projectID, filePath string) error {
	cw := &countingWriter{ResponseWriter: w}
	outcome, err := s.serve(cw, r, projectID, filePath)
	if err != nil {
		s.count(outcome, 0)
		return err
	}
	switch {
	case cw.status == http.StatusNotModified:
		outcome = "not_modified"
	case cw.status == http.StatusRequestedRangeNotSatisfiable:
		outcome = "bad_range"
	case cw.status >= 300:
		outcome = "failed"
	}
	if outcome != "served" {
		cw.n = 0 // an error page is no recording
	}
	s.count(outcome, cw.n)
	return nil
}

func (s *Server) count(outcome string, n int64) {
	if s.metrics != nil {
		s.metrics.RecordingServed(outcome, n)
	}
}

var (
	errNotFound  = livehooks.Errorf(livehooks.ENOTFOUND, "no such recording, or it was removed")
	errForbidden = livehooks.Errorf(livehooks.EDENIED, "the download link is not signed: use the download_url of the callback as it is")
	errAltered   = livehooks.Errorf(livehooks.EDENIED, "the download link's signature does not match: the link was altered")
)

func (s *Server) serve(w http.ResponseWriter, r *http.Request, projectID, filePath string) (outcome string, err error) {
	if !canonical(filePath) || projectID == "" || strings.ContainsAny(projectID, "/\x00") {
		return "not_found", errNotFound
	}
	l, err := s.signer.Check(projectID, filePath, r.URL.Query(), s.clock.Now())
	switch {
	case errors.Is(err, errUnsigned):
		return "unsigned", errForbidden
	case errors.Is(err, errExpired):
		return "expired", livehooks.Errorf(livehooks.EDENIED, "the download link expired at %s", livehooks.FormatTime(l.Expires))
	case err != nil:
		return "bad_signature", errAltered
	}
	f, fi, err := s.open(projectID, filePath)
	if err != nil {
		return "not_found", errNotFound
	}
	defer f.Close()

	// A recording may take long to send; the server's write timeout is
	// meant for API answers. Still bounded, so a stalled reader goes away.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(10*time.Minute + time.Duration(fi.Size()/(128<<10))*time.Second))
	w.Header().Set("Content-Type", contentType(filePath))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", cacheControl(l.Expires, s.clock.Now()))
	var content io.ReadSeeker = f
	if isPlaylist(filePath) {
		if fi.Size() > maxPlaylist {
			return "not_found", livehooks.Errorf(livehooks.ENOTFOUND, "the playlist is larger than %d MiB", maxPlaylist>>20)
		}
		body, err := io.ReadAll(io.LimitReader(f, maxPlaylist+1))
		if err != nil || len(body) > maxPlaylist {
			return "not_found", errNotFound
		}
		content = bytes.NewReader(RewritePlaylist(body, func(ref string) string {
			return s.url(Link{Project: l.Project, Path: path.Join(path.Dir(filePath), ref), Expires: l.Expires})
		}))
	}
	http.ServeContent(w, r, path.Base(filePath), fi.ModTime(), content)
	return "served", nil
}

// open opens the file a link names, once the resolver has put it inside the
// project's record directories, and checks that what was opened is what was
// checked: a regular file, reached without a symlink swapped in between.
func (s *Server) open(projectID, filePath string) (*os.File, os.FileInfo, error) {
	real, err := s.resolve(projectID, filePath)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(real, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	if err == nil && runtime.GOOS == "linux" {
		if opened, lerr := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd()))); lerr == nil && opened != real {
			err = errors.New("the file moved while it was opened")
		}
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// canonical reports whether p is an absolute, clean file path without NUL:
// what Link produces. Anything else cannot carry a valid signature anyway;
// refusing it first keeps odd paths away from the file system.
func canonical(p string) bool {
	return strings.HasPrefix(p, "/") && p == path.Clean(p) && p == filepath.Clean(p) && !strings.ContainsRune(p, 0) && len(p) <= 4096
}

// contentType names the media types of the recorders' formats.
func contentType(p string) string {
	switch strings.ToLower(path.Ext(p)) {
	case ".flv":
		return "video/x-flv"
	case ".mp4", ".m4v":
		return "video/mp4"
	case ".m4s":
		return "video/iso.segment"
	case ".m3u8":
		return "application/vnd.apple.mpegurl"
	case ".ts":
		return "video/mp2t"
	case ".aac":
		return "audio/aac"
	}
	return "application/octet-stream"
}

func isPlaylist(p string) bool { return strings.EqualFold(path.Ext(p), ".m3u8") }

// cacheControl lets the receiver (not shared caches: the link is a bearer
// credential) keep a finished file while its link is valid.
func cacheControl(expires, now time.Time) string {
	age := maxAge
	if !expires.IsZero() {
		age = min(expires.Sub(now), maxAge)
	}
	return fmt.Sprintf("private, max-age=%d, immutable", int64(max(age, 0)/time.Second))
}

// countingWriter keeps the status and the body bytes of an answer.
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (c *countingWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadFrom keeps http.ServeContent's copy of a file zero-copy (sendfile).
func (c *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := io.Copy(c.ResponseWriter, r)
	c.n += n
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
