package api

import (
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/livehooks/livehooks"
)

// Limits of the domain settings.
const (
	maxPauseSeconds      = 86400
	maxDownloadURLExpiry = 10 * 365 * 24 * time.Hour
	maxPresignExpiry     = 7 * 24 * time.Hour // what S3 signature V4 accepts
	maxTemplateLength    = livehooks.MaxURLLength
	maxPrefixLength      = 512
	minStorageSecretLen  = 8
	maxStorageSecretLen  = 256
	maxStorageAccessKey  = 128
	maxStorageRegionLen  = 64
	templatePlaceholders = "{domain} {app} {stream} {file} {job_id} {task_id}"
)

// DomainRequest is the body of PUT /v1/{project_id}/record/domains/{publish_domain}
// and, with its project and domain, an entry of the recording config file
// (serve --recording-config). Pointers tell an absent field from a zero one;
// a PUT replaces the whole settings, absent fields take their defaults.
type DomainRequest struct {
	RecordFormat        *string `json:"record_format" yaml:"record_format"`
	DownloadURLTemplate *string `json:"download_url_template" yaml:"download_url_template"`
	PlayURLTemplate     *string `json:"play_url_template" yaml:"play_url_template"`
	MaxPauseSeconds     *int64  `json:"max_pause_seconds" yaml:"max_pause_seconds"`
	// DownloadURLExpirySeconds is the lifetime of links to files livehooks
	// serves itself (no template, no storage); 0: they never expire.
	DownloadURLExpirySeconds *int64 `json:"download_url_expiry_seconds" yaml:"download_url_expiry_seconds"`
	RejectUnknownStreams     *bool  `json:"reject_unknown_streams" yaml:"reject_unknown_streams"`
	// DeleteAfterUpload deletes a recording's local file once it is in
	// Storage and its RECORD_FILE_COMPLETE was delivered (default: keep).
	DeleteAfterUpload *bool           `json:"delete_after_upload" yaml:"delete_after_upload"`
	Storage           *StorageRequest `json:"storage" yaml:"storage"`
}

// StorageRequest is the storage part of a DomainRequest. SecretKey is
// write-only: no response or log line ever shows it.
type StorageRequest struct {
	Endpoint             *string `json:"endpoint" yaml:"endpoint"`
	Secure               *bool   `json:"secure" yaml:"secure"`
	Region               *string `json:"region" yaml:"region"`
	Bucket               *string `json:"bucket" yaml:"bucket"`
	Prefix               *string `json:"prefix" yaml:"prefix"`
	AccessKey            *string `json:"access_key" yaml:"access_key"`
	SecretKey            *string `json:"secret_key" yaml:"secret_key"`
	Presign              *bool   `json:"presign" yaml:"presign"`
	PresignExpirySeconds *int64  `json:"presign_expiry_seconds" yaml:"presign_expiry_seconds"`
	PublicURL            *string `json:"public_url" yaml:"public_url"`
	// SecretKeyEnv names an environment variable holding the secret. Only the
	// config file reads it (the loader resolves it into SecretKey); the API
	// ignores it.
	SecretKeyEnv string `json:"-" yaml:"secret_key_env"`
}

// Settings validates the request and returns the settings of publishDomain in
// projectID. prev is the domain's current settings (nil when it has none): its
// create time is kept, and a storage given without secret_key keeps prev's
// secret when the endpoint and access key are the same. Errors are EINVALID
// and never contain the secret.
func (req *DomainRequest) Settings(projectID, publishDomain string, prev *livehooks.DomainSettings, now time.Time) (*livehooks.DomainSettings, error) {
	if err := validProjectID(projectID); err != nil {
		return nil, err
	}
	if !livehooks.IsDomainName(publishDomain) {
		return nil, livehooks.Errorf(livehooks.EINVALID, "publish_domain must be a valid DNS name")
	}
	now = now.UTC().Truncate(time.Second)
	d := &livehooks.DomainSettings{
		ProjectID:         projectID,
		PublishDomain:     publishDomain,
		RecordFormat:      livehooks.FormatFLV,
		MaxPause:          livehooks.DefaultMaxPause,
		DownloadURLExpiry: livehooks.DefaultDownloadURLExpiry,
		CreateTime:        now,
		UpdateTime:        now,
	}
	if prev != nil && !prev.CreateTime.IsZero() {
		d.CreateTime = prev.CreateTime
	}
	if req.RecordFormat != nil {
		switch f := strings.ToUpper(*req.RecordFormat); f {
		case livehooks.FormatFLV, livehooks.FormatMP4, livehooks.FormatHLS:
			d.RecordFormat = f
		default:
			return nil, livehooks.Errorf(livehooks.EINVALID, "record_format must be FLV, MP4 or HLS")
		}
	}
	var err error
	if d.DownloadURLTemplate, err = urlTemplate("download_url_template", req.DownloadURLTemplate); err != nil {
		return nil, err
	}
	if d.PlayURLTemplate, err = urlTemplate("play_url_template", req.PlayURLTemplate); err != nil {
		return nil, err
	}
	if req.MaxPauseSeconds != nil {
		if *req.MaxPauseSeconds < 0 || *req.MaxPauseSeconds > maxPauseSeconds {
			return nil, livehooks.Errorf(livehooks.EINVALID, "max_pause_seconds must be from 0 to %d", maxPauseSeconds)
		}
		d.MaxPause = time.Duration(*req.MaxPauseSeconds) * time.Second
	}
	if req.DownloadURLExpirySeconds != nil {
		if secs := *req.DownloadURLExpirySeconds; secs < 0 || secs > int64(maxDownloadURLExpiry/time.Second) {
			return nil, livehooks.Errorf(livehooks.EINVALID, "download_url_expiry_seconds must be from 0 (never expires) to %d (10 years)", int64(maxDownloadURLExpiry/time.Second))
		}
		d.DownloadURLExpiry = time.Duration(*req.DownloadURLExpirySeconds) * time.Second
	}
	if req.RejectUnknownStreams != nil {
		d.RejectUnknownStreams = *req.RejectUnknownStreams
	}
	if req.Storage != nil {
		var prevStorage *livehooks.StorageSettings
		if prev != nil {
			prevStorage = prev.Storage
		}
		if d.Storage, err = req.Storage.settings(prevStorage); err != nil {
			return nil, err
		}
	}
	if req.DeleteAfterUpload != nil && *req.DeleteAfterUpload {
		if d.Storage == nil {
			return nil, livehooks.Errorf(livehooks.EINVALID, "delete_after_upload needs storage: without it the local file is the only copy")
		}
		d.DeleteAfterUpload = true
	}
	return d, nil
}

func (req *StorageRequest) settings(prev *livehooks.StorageSettings) (*livehooks.StorageSettings, error) {
	st := &livehooks.StorageSettings{Secure: true, PresignExpiry: maxPresignExpiry}
	st.Endpoint = deref(req.Endpoint)
	if st.Endpoint == "" {
		return nil, livehooks.Errorf(livehooks.EINVALID, "storage.endpoint is required")
	} else if !isEndpoint(st.Endpoint) {
		return nil, livehooks.Errorf(livehooks.EINVALID, "storage.endpoint must be host[:port], without a scheme or path")
	}
	if req.Secure != nil {
		st.Secure = *req.Secure
	}
	st.Region = deref(req.Region)
	if len(st.Region) > maxStorageRegionLen || st.Region != "" && !isRegion(st.Region) {
		return nil, livehooks.Errorf(livehooks.EINVALID, "storage.region must be at most %d letters, digits, '-' and '_'", maxStorageRegionLen)
	}
	st.Bucket = deref(req.Bucket)
	if st.Bucket == "" {
		return nil, livehooks.Errorf(livehooks.EINVALID, "storage.bucket is required")
	} else if !IsBucketName(st.Bucket) {
		return nil, livehooks.Errorf(livehooks.EINVALID, "storage.bucket must be a valid S3 bucket name (3-63 lowercase letters, digits, '.' and '-')")
	}
	prefix, err := objectPrefix(deref(req.Prefix))
	if err != nil {
		return nil, err
	}
	st.Prefix = prefix
	st.AccessKey = deref(req.AccessKey)
	if st.AccessKey == "" {
		return nil, livehooks.Errorf(livehooks.EINVALID, "storage.access_key is required")
	} else if len(st.AccessKey) > maxStorageAccessKey || !isPrintableASCII(st.AccessKey) {
		return nil, livehooks.Errorf(livehooks.EINVALID, "storage.access_key must be 1-%d printable ASCII characters without spaces", maxStorageAccessKey)
	}
	switch {
	case req.SecretKey != nil && *req.SecretKey != "":
		st.SecretKey = *req.SecretKey
		if len(st.SecretKey) < minStorageSecretLen || len(st.SecretKey) > maxStorageSecretLen || !isPrintableASCII(st.SecretKey) {
			return nil, livehooks.Errorf(livehooks.EINVALID, "storage.secret_key must be %d-%d printable ASCII characters without spaces", minStorageSecretLen, maxStorageSecretLen)
		}
	case prev != nil && prev.SecretKey != "" && prev.Endpoint == st.Endpoint && prev.AccessKey == st.AccessKey:
		st.SecretKey = prev.SecretKey // write-only: a client that read the settings back cannot send it
	default:
		return nil, livehooks.Errorf(livehooks.EINVALID, "storage.secret_key is required (it may be left out only to keep the stored one of the same endpoint and access_key)")
	}
	if req.Presign != nil {
		st.Presign = *req.Presign
	}
	if req.PresignExpirySeconds != nil {
		secs := *req.PresignExpirySeconds
		if secs < 1 || secs > int64(maxPresignExpiry/time.Second) {
			return nil, livehooks.Errorf(livehooks.EINVALID, "storage.presign_expiry_seconds must be from 1 to %d (7 days)", int64(maxPresignExpiry/time.Second))
		}
		st.PresignExpiry = time.Duration(secs) * time.Second
	}
	if raw := deref(req.PublicURL); raw != "" {
		if err := livehooks.ValidateCallbackURL("storage.public_url", raw); err != nil {
			return nil, err
		}
		st.PublicURL = strings.TrimRight(raw, "/") // the uploader appends "/" + key
	}
	return st, nil
}

// urlTemplate checks a URL template: an http(s) URL with a host once its
// placeholders are filled in, using only the known placeholders.
func urlTemplate(field string, p *string) (string, error) {
	t := deref(p)
	if t == "" {
		return "", nil
	}
	if len(t) > maxTemplateLength {
		return "", livehooks.Errorf(livehooks.EINVALID, "%s must be at most %d bytes", field, maxTemplateLength)
	}
	if !utf8.ValidString(t) {
		return "", livehooks.Errorf(livehooks.EINVALID, "%s must be valid UTF-8", field)
	}
	var filled strings.Builder
	for rest := t; rest != ""; {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			filled.WriteString(rest)
			break
		}
		filled.WriteString(rest[:open])
		end := strings.IndexByte(rest[open:], '}')
		if rest[open] == '}' || end < 0 {
			return "", livehooks.Errorf(livehooks.EINVALID, "%s has an unbalanced brace; placeholders are %s", field, templatePlaceholders)
		}
		ph := rest[open : open+end+1]
		if !isPlaceholder(ph) {
			return "", livehooks.Errorf(livehooks.EINVALID, "%s: unknown placeholder %s; placeholders are %s", field, clip(ph, 32), templatePlaceholders)
		}
		filled.WriteString("x")
		rest = rest[open+end+1:]
	}
	u, err := url.Parse(filled.String())
	switch {
	case err != nil || u.Opaque != "":
		return "", livehooks.Errorf(livehooks.EINVALID, "%s is not a valid URL", field)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", livehooks.Errorf(livehooks.EINVALID, "%s must start with http:// or https://", field)
	case u.Hostname() == "":
		return "", livehooks.Errorf(livehooks.EINVALID, "%s must have a host", field)
	case u.User != nil:
		return "", livehooks.Errorf(livehooks.EINVALID, "%s must not contain user information", field)
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] == 0x7f {
			return "", livehooks.Errorf(livehooks.EINVALID, "%s must not contain spaces or control characters", field)
		}
	}
	return t, nil
}

func isPlaceholder(s string) bool {
	switch s {
	case "{domain}", "{app}", "{stream}", "{file}", "{job_id}", "{task_id}":
		return true
	}
	return false
}

// isEndpoint reports whether s is host[:port]: a DNS name, an IPv4 address or
// a bracketed IPv6 address, and an optional port 1-65535.
func isEndpoint(s string) bool {
	host := s
	if h, port, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return false
		}
		host = h
	} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		host = s[1 : len(s)-1]
	} else if strings.Contains(s, ":") {
		return false // an unbracketed IPv6 address or a bad port
	}
	if strings.Contains(host, ":") {
		return net.ParseIP(host) != nil && strings.HasPrefix(s, "[")
	}
	return livehooks.IsDomainName(host)
}

func isRegion(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
			return false
		}
	}
	return true
}

// IsBucketName reports whether s follows the S3 bucket naming rules: 3-63
// lowercase letters, digits, dots and hyphens, beginning and ending with a
// letter or digit, no "..", not an IPv4 address, none of the reserved
// prefixes and suffixes.
func IsBucketName(s string) bool {
	if len(s) < 3 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '.' || b == '-') {
			return false
		}
	}
	first, last := s[0], s[len(s)-1]
	if first == '.' || first == '-' || last == '.' || last == '-' {
		return false
	}
	if strings.Contains(s, "..") || strings.Contains(s, ".-") || strings.Contains(s, "-.") {
		return false
	}
	if ip := net.ParseIP(s); ip != nil {
		return false
	}
	for _, p := range []string{"xn--", "sthree-", "amzn-s3-demo-"} {
		if strings.HasPrefix(s, p) {
			return false
		}
	}
	for _, p := range []string{"-s3alias", "--ol-s3", ".mrap", "--x-s3"} {
		if strings.HasSuffix(s, p) {
			return false
		}
	}
	return true
}

// objectPrefix checks and normalizes an object key prefix: a folder path
// without leading or trailing slashes, no empty, "." or ".." segments, no
// control characters or backslashes.
func objectPrefix(p string) (string, error) {
	p = strings.Trim(p, "/")
	if p == "" {
		return "", nil
	}
	if len(p) > maxPrefixLength || !utf8.ValidString(p) {
		return "", livehooks.Errorf(livehooks.EINVALID, "storage.prefix must be at most %d bytes of UTF-8", maxPrefixLength)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", livehooks.Errorf(livehooks.EINVALID, "storage.prefix must not contain empty, '.' or '..' segments")
		}
	}
	for _, r := range p {
		if r < ' ' || r == 0x7f || r == '\\' {
			return "", livehooks.Errorf(livehooks.EINVALID, "storage.prefix must not contain control characters or backslashes")
		}
	}
	return p, nil
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// domainResponse is a domain's settings as the API shows them: never with the
// storage secret.
type domainResponse struct {
	PublishDomain            string           `json:"publish_domain"`
	RecordFormat             string           `json:"record_format"`
	DownloadURLTemplate      string           `json:"download_url_template,omitempty"`
	PlayURLTemplate          string           `json:"play_url_template,omitempty"`
	MaxPauseSeconds          int64            `json:"max_pause_seconds"`
	DownloadURLExpirySeconds int64            `json:"download_url_expiry_seconds"`
	RejectUnknownStreams     bool             `json:"reject_unknown_streams"`
	DeleteAfterUpload        bool             `json:"delete_after_upload"`
	Storage                  *storageResponse `json:"storage,omitempty"`
	CreateTime               string           `json:"create_time"`
	UpdateTime               string           `json:"update_time"`
}

type storageResponse struct {
	Endpoint             string `json:"endpoint"`
	Secure               bool   `json:"secure"`
	Region               string `json:"region,omitempty"`
	Bucket               string `json:"bucket"`
	Prefix               string `json:"prefix,omitempty"`
	AccessKey            string `json:"access_key"`
	Presign              bool   `json:"presign"`
	PresignExpirySeconds int64  `json:"presign_expiry_seconds"`
	PublicURL            string `json:"public_url,omitempty"`
}

type domainListResponse struct {
	Total   int              `json:"total"`
	Domains []domainResponse `json:"domains"`
}

func newDomainResponse(d *livehooks.DomainSettings) domainResponse {
	r := domainResponse{
		PublishDomain:            d.PublishDomain,
		RecordFormat:             d.RecordFormat,
		DownloadURLTemplate:      d.DownloadURLTemplate,
		PlayURLTemplate:          d.PlayURLTemplate,
		MaxPauseSeconds:          int64(d.MaxPause / time.Second),
		DownloadURLExpirySeconds: int64(d.DownloadURLExpiry / time.Second),
		RejectUnknownStreams:     d.RejectUnknownStreams,
		DeleteAfterUpload:        d.DeleteAfterUpload,
		CreateTime:               livehooks.FormatTime(d.CreateTime),
		UpdateTime:               livehooks.FormatTime(d.UpdateTime),
	}
	if r.RecordFormat == "" {
		r.RecordFormat = livehooks.FormatFLV
	}
	if st := d.Storage; st != nil {
		expiry := st.PresignExpiry
		if expiry <= 0 || expiry > maxPresignExpiry {
			expiry = maxPresignExpiry // what the uploader applies
		}
		r.Storage = &storageResponse{
			Endpoint: st.Endpoint, Secure: st.Secure, Region: st.Region, Bucket: st.Bucket, Prefix: st.Prefix,
			AccessKey: st.AccessKey, Presign: st.Presign, PresignExpirySeconds: int64(expiry / time.Second), PublicURL: st.PublicURL,
		}
	}
	return r
}

// domainName returns the {publish_domain} path value, or ENOTFOUND when it
// cannot name a domain (as a missing config id is a 404, not a 400).
func domainName(r *http.Request) (string, error) {
	d := r.PathValue("publish_domain")
	if !livehooks.IsDomainName(d) {
		return "", livehooks.Errorf(livehooks.ENOTFOUND, "publish domain %s has no recording settings", clip(d, 128))
	}
	return d, nil
}

// ifDomains returns h when the server has a domain store, else nil: the route
// is then not served.
func (s *Server) ifDomains(h http.Handler) http.Handler {
	if s.domains == nil {
		return nil
	}
	return h
}

func (s *Server) handleListDomains() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		list, err := s.domains.FindDomains(r.Context(), r.PathValue("project_id"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		resp := domainListResponse{Total: len(list), Domains: make([]domainResponse, 0, len(list))}
		for _, d := range list {
			resp.Domains = append(resp.Domains, newDomainResponse(d))
		}
		writeJSON(w, http.StatusOK, resp)
	})
}

func (s *Server) handleShowDomain() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		domain, err := domainName(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		d, err := s.domains.FindDomain(r.Context(), r.PathValue("project_id"), domain)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, newDomainResponse(d))
	})
}

// handlePutDomain creates (201) or replaces (200) a domain's settings.
func (s *Server) handlePutDomain() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		project, domain := r.PathValue("project_id"), r.PathValue("publish_domain")
		if err := validProjectID(project); err != nil {
			s.writeError(w, r, err)
			return
		}
		if !livehooks.IsDomainName(domain) {
			s.writeError(w, r, livehooks.Errorf(livehooks.EINVALID, "publish_domain must be a valid DNS name"))
			return
		}
		req, err := decode[DomainRequest](w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		prev, err := s.domains.FindDomain(r.Context(), project, domain)
		if livehooks.ErrorCode(err) == livehooks.ENOTFOUND {
			prev, err = nil, nil
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		d, err := req.Settings(project, domain, prev, s.clock.Now())
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := s.domains.PutDomain(r.Context(), d); err != nil {
			s.writeError(w, r, err)
			return
		}
		status := http.StatusOK
		if prev == nil {
			status = http.StatusCreated
		}
		s.logger.InfoContext(r.Context(), "recording settings stored", "project_id", project, "publish_domain", domain,
			"created", prev == nil, "record_format", d.RecordFormat, "storage", d.Storage != nil)
		writeJSON(w, status, newDomainResponse(d))
	})
}

func (s *Server) handleDeleteDomain() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		domain, err := domainName(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		project := r.PathValue("project_id")
		if err := s.domains.DeleteDomain(r.Context(), project, domain); err != nil {
			s.writeError(w, r, err)
			return
		}
		s.logger.InfoContext(r.Context(), "recording settings deleted", "project_id", project, "publish_domain", domain)
		w.WriteHeader(http.StatusNoContent)
	})
}
