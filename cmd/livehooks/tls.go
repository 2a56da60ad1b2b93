package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// certCheckInterval is how often a handshake may look at the certificate
// files for a renewal: a certificate renewed by certbot or a cert-manager
// sidecar is served within this long of its first handshake after the change.
const certCheckInterval = time.Second

// certReloader serves the key pair in two PEM files and picks up a new pair
// when the files change, without a restart. A pair that does not load (a
// renewal half-written, a key that does not match its certificate yet) leaves
// the last good pair in service until the files settle.
type certReloader struct {
	certFile, keyFile string
	interval          time.Duration
	logger            *slog.Logger

	mu       sync.Mutex
	cert     *tls.Certificate
	loaded   [2][]byte // the PEM contents of cert, to notice a change
	failed   [sha256.Size]byte
	lastLook time.Time
}

// newCertReloader loads the pair once; it fails with a message that names
// the flag and file at fault.
func newCertReloader(certFile, keyFile string, logger *slog.Logger) (*certReloader, error) {
	switch {
	case certFile == "" && keyFile == "":
		return nil, nil
	case certFile == "":
		return nil, errors.New("--tls-key needs --tls-cert: give both PEM files, or neither for plain HTTP")
	case keyFile == "":
		return nil, errors.New("--tls-cert needs --tls-key: give both PEM files, or neither for plain HTTP")
	}
	r := &certReloader{certFile: certFile, keyFile: keyFile, interval: certCheckInterval, logger: logger}
	certPEM, keyPEM, err := r.read()
	if err != nil {
		return nil, err
	}
	cert, err := loadPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s, --tls-key %s: %w", certFile, keyFile, err)
	}
	r.cert, r.loaded, r.lastLook = cert, [2][]byte{certPEM, keyPEM}, time.Now()
	logger.Info("TLS certificate loaded", certAttrs(cert)...)
	return r, nil
}

func (r *certReloader) read() (certPEM, keyPEM []byte, err error) {
	certPEM, err = os.ReadFile(r.certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("--tls-cert: %w", fileErr(err))
	}
	keyPEM, err = os.ReadFile(r.keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("--tls-key: %w", fileErr(err))
	}
	return certPEM, keyPEM, nil
}

// fileErr says what an operator should fix about a file that cannot be read.
func fileErr(err error) error {
	var pe *fs.PathError
	switch {
	case errors.Is(err, fs.ErrNotExist) && errors.As(err, &pe):
		return fmt.Errorf("%s does not exist", pe.Path)
	case errors.Is(err, fs.ErrPermission) && errors.As(err, &pe):
		return fmt.Errorf("%s is not readable by this user", pe.Path)
	}
	return err
}

// loadPair parses a certificate chain and its private key and checks that
// they belong together.
func loadPair(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, err
		}
	}
	return &cert, nil
}

func certAttrs(c *tls.Certificate) []any {
	return []any{"subject", c.Leaf.Subject.String(), "dns_names", c.Leaf.DNSNames, "not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339)}
}

// GetCertificate is tls.Config.GetCertificate: the current pair, reloaded
// first when the files changed since the last look.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.lastLook) >= r.interval {
		r.lastLook = now
		r.reload()
	}
	return r.cert, nil
}

// reload swaps in the pair on disk if it differs from the one in service and
// loads. A pair that fails is reported once per content, not per handshake.
func (r *certReloader) reload() {
	certPEM, keyPEM, err := r.read()
	if err == nil && bytes.Equal(certPEM, r.loaded[0]) && bytes.Equal(keyPEM, r.loaded[1]) {
		return
	}
	var cert *tls.Certificate
	if err == nil {
		cert, err = loadPair(certPEM, keyPEM)
	}
	if err != nil {
		sum := sha256.Sum256(append(append([]byte(err.Error()), certPEM...), keyPEM...))
		if sum != r.failed {
			r.failed = sum
			r.logger.Warn("TLS certificate files changed but do not load; still serving the previous certificate",
				append([]any{"cert", r.certFile, "key", r.keyFile, "error", err}, certAttrs(r.cert)...)...)
		}
		return
	}
	r.cert, r.loaded = cert, [2][]byte{certPEM, keyPEM}
	r.logger.Info("TLS certificate reloaded", certAttrs(cert)...)
}

// tlsConfig is the server side: TLS 1.2 or newer, HTTP/2 offered (net/http
// adds "h2" when it serves TLS), the certificate from the reloader.
func (r *certReloader) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}

// isLoopback reports whether a listener only takes connections from this
// machine.
func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
