package objstore

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/egress"
)

// MaxPresignExpiry is the longest validity of a presigned URL that S3
// (signature V4) accepts; it is also the default.
const MaxPresignExpiry = 7 * 24 * time.Hour

// Options configure a Store. The zero value works.
type Options struct {
	// Transport carries the S3 requests. When nil, a transport that refuses
	// loopback, private, link-local, multicast and cloud-metadata addresses
	// at dial time, after DNS resolution, except AllowCIDRs: storage
	// endpoints are user input, as callback URLs are (SPEC §6).
	Transport  http.RoundTripper
	AllowCIDRs []netip.Prefix
	// MaxRetries is how many times minio-go tries one request (default 3;
	// the caller retries whole uploads).
	MaxRetries int
	// MaxClients bounds the cache of S3 clients (default 256).
	MaxClients int
	// StallTimeout ends an upload that reads nothing of its file for this
	// long (default 30 s): a peer that stops reading the body, whose
	// connection would otherwise hang until the kernel gives up.
	StallTimeout time.Duration
}

// PartSize is the part size of multipart uploads, which minio-go uses for
// objects bigger than one part. Parts of a file are read from it in place
// (io.SectionReader), PartThreads at a time, so memory stays flat whatever
// the size of the file.
const (
	PartSize    = 16 << 20
	PartThreads = 2
)

// Store uploads files to the bucket that each call's settings name. It is
// safe for concurrent use.
type Store struct {
	o Options

	mu      sync.Mutex
	clients map[clientKey]*cachedClient
}

// The cache key is what identifies an account; the rest of the settings that
// shape a client are checked on each use, so that a rotated secret or a
// changed region takes effect at once.
type clientKey struct{ endpoint, accessKey string }

type cachedClient struct {
	client *minio.Client
	secure bool
	region string
	secret [sha256.Size]byte // digest, to notice a rotated secret
}

var _ livehooks.Uploader = (*Store)(nil)

// New returns a Store.
func New(o Options) *Store {
	if o.MaxClients <= 0 {
		o.MaxClients = 256
	}
	if o.MaxRetries <= 0 {
		o.MaxRetries = 3
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = 30 * time.Second
	}
	if o.Transport == nil {
		o.Transport = guardedTransport(o.AllowCIDRs)
	}
	return &Store{o: o, clients: map[clientKey]*cachedClient{}}
}

// Upload puts the file at path into the bucket under the settings' prefix and
// objectKey, and returns the URL for download_url. An HLS playlist (.m3u8)
// goes up with every segment it lists, under the same prefix, segments first,
// and the URL is the playlist's. With Presign the URL is a presigned GET URL
// (of the playlist only: an HLS player fetching the segments needs a
// public-read bucket or PublicURL). Errors never contain the secret key.
func (s *Store) Upload(ctx context.Context, st *livehooks.StorageSettings, objectKey, path string) (string, error) {
	if st == nil {
		return "", errors.New("objstore: no storage settings")
	}
	url, err := s.upload(ctx, st, objectKey, path)
	if err != nil {
		return "", redact(err, st.SecretKey)
	}
	return url, nil
}

func (s *Store) upload(ctx context.Context, st *livehooks.StorageSettings, objectKey, file string) (string, error) {
	key := ObjectKey(st.Prefix, objectKey)
	if key == "" {
		return "", errors.New("objstore: empty object key")
	}
	c, err := s.client(st)
	if err != nil {
		return "", err
	}
	ctx, w := watchStall(ctx, s.o.StallTimeout)
	defer w.stop()
	if strings.EqualFold(path.Ext(file), ".m3u8") {
		err = uploadHLS(ctx, c, st.Bucket, key, file, w)
	} else {
		_, err = c.FPutObject(ctx, st.Bucket, key, file, putOptions(ContentType(file), w))
		if err != nil {
			err = fmt.Errorf("objstore: put %s/%s: %w", st.Bucket, key, err)
		}
	}
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errStalled) {
			err = fmt.Errorf("%w: %w", cause, err)
		}
		return "", err
	}
	if st.Presign {
		u, err := c.PresignedGetObject(ctx, st.Bucket, key, presignExpiry(st.PresignExpiry), nil)
		if err != nil {
			return "", fmt.Errorf("objstore: presign %s/%s: %w", st.Bucket, key, err)
		}
		return u.String(), nil
	}
	return ObjectURL(st, key), nil
}

// client returns the cached client of the settings' account, making one when
// none matches.
func (s *Store) client(st *livehooks.StorageSettings) (*minio.Client, error) {
	k := clientKey{st.Endpoint, st.AccessKey}
	secret := sha256.Sum256([]byte(st.SecretKey))
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[k]; ok && c.secure == st.Secure && c.region == st.Region && c.secret == secret {
		return c.client, nil
	}
	c, err := minio.New(st.Endpoint, &minio.Options{
		Creds:      credentials.NewStaticV4(st.AccessKey, st.SecretKey, ""),
		Secure:     st.Secure,
		Region:     st.Region,
		Transport:  s.o.Transport,
		MaxRetries: s.o.MaxRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("objstore: endpoint %s: %w", st.Endpoint, err)
	}
	if len(s.clients) >= s.o.MaxClients {
		clear(s.clients) // accounts are few; a full cache means churn, not a working set
	}
	s.clients[k] = &cachedClient{client: c, secure: st.Secure, region: st.Region, secret: secret}
	return c, nil
}

// guardedTransport is minio-go's default transport with an SSRF guard on
// its dialer and no proxy (a proxy would dial for us and bypass the guard).
func guardedTransport(allow []netip.Prefix) *http.Transport {
	dialer := egress.Dialer(allow, 10*time.Second)
	return &http.Transport{
		DialContext:            dialer.DialContext,
		MaxIdleConns:           256,
		MaxIdleConnsPerHost:    16,
		ResponseHeaderTimeout:  time.Minute,
		MaxResponseHeaderBytes: egress.MaxResponseHeaderBytes,
		IdleConnTimeout:        time.Minute,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  10 * time.Second,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		// Objects stored with Content-Encoding: gzip stay as they are.
		DisableCompression: true,
	}
}

func presignExpiry(d time.Duration) time.Duration {
	if d <= 0 || d > MaxPresignExpiry {
		return MaxPresignExpiry
	}
	if d < time.Second {
		return time.Second
	}
	return d
}

// ObjectKey joins a prefix (a folder, with or without slashes around it) and
// a key.
func ObjectKey(prefix, key string) string {
	prefix, key = strings.Trim(prefix, "/"), strings.TrimLeft(key, "/")
	if prefix == "" {
		return key
	}
	if key == "" {
		return ""
	}
	return prefix + "/" + key
}

// ObjectURL is the URL of an object that is not presigned: under PublicURL
// when set, else path-style on the endpoint.
func ObjectURL(st *livehooks.StorageSettings, key string) string {
	if st.PublicURL != "" {
		return strings.TrimRight(st.PublicURL, "/") + "/" + escapeKey(key)
	}
	scheme := "http"
	if st.Secure {
		scheme = "https"
	}
	return scheme + "://" + st.Endpoint + "/" + url.PathEscape(st.Bucket) + "/" + escapeKey(key)
}

// escapeKey escapes each segment of an object key for a URL path.
func escapeKey(key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// ContentType returns the MIME type of a recording file by its extension.
func ContentType(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".flv":
		return "video/x-flv"
	case ".mp4":
		return "video/mp4"
	case ".m3u8":
		return "application/vnd.apple.mpegurl"
	case ".ts":
		return "video/mp2t"
	case ".m4s":
		return "video/iso.segment"
	}
	return "application/octet-stream"
}

// redact removes the secret from an error's text. The chain stays reachable
// (errors.Is/As) for callers that need the cause.
func redact(err error, secret string) error {
	if secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), secret, "[REDACTED]"), err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
