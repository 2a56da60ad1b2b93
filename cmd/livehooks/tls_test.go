package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA issues certificates for 127.0.0.1 that a client trusting pool
// accepts.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "livehooks test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns the PEM certificate and key of a server certificate for
// 127.0.0.1 with the given serial number.
func (ca *testCA) issue(t *testing.T, serial int64) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "livehooks test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// writeFile replaces path the way renewal tools do: a new file renamed over
// the old one.
func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// servedSerial makes one request on a new connection and returns the serial
// number of the certificate it was served and the protocol it spoke.
func servedSerial(t *testing.T, base string, pool *x509.CertPool) (int64, string) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz over TLS: %d", resp.StatusCode)
	}
	return resp.TLS.PeerCertificates[0].SerialNumber.Int64(), resp.Proto
}

// TestServeTLSReloadsCertificate: serve speaks HTTPS and HTTP/2 with the
// given pair, refuses TLS 1.1, and serves a renewed certificate without a
// restart; a half-written renewal (new certificate, old key) leaves the
// previous pair in service.
func TestServeTLSReloadsCertificate(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	c1, k1 := ca.issue(t, 101)
	writeFile(t, certFile, c1)
	writeFile(t, keyFile, k1)

	srv := start(t, nil, "serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--dev", "--log-format", "json",
		"--tls-cert", certFile, "--tls-key", keyFile)
	base := "https://" + strings.TrimPrefix(srv.serveAddr(t), "http://")
	if !strings.Contains(srv.stderr.String(), `"scheme":"https"`) {
		t.Fatalf("the listening line does not say https:\n%s", srv.stderr.String())
	}
	// Links livehooks hands out default to https too.
	if want := `"public_url":"` + base + `"`; !strings.Contains(srv.stderr.String(), want) {
		t.Fatalf("the served recordings' URL is not %s:\n%s", want, srv.stderr.String())
	}
	serial, proto := servedSerial(t, base, ca.pool)
	if serial != 101 || proto != "HTTP/2.0" {
		t.Fatalf("served serial %d over %s, want 101 over HTTP/2.0", serial, proto)
	}
	// Plain HTTP on the TLS port is refused.
	if resp, err := http.Get(strings.Replace(base, "https", "http", 1) + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP answered on the TLS port")
		}
	}
	// TLS 1.1 is refused.
	conn, err := tls.Dial("tcp", strings.TrimPrefix(base, "https://"), &tls.Config{RootCAs: ca.pool, MaxVersion: tls.VersionTLS11})
	if err == nil {
		conn.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}

	// A renewal caught half-way: the new certificate, the old key.
	c2, k2 := ca.issue(t, 202)
	writeFile(t, certFile, c2)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(srv.stderr.String(), "do not load") {
		if time.Now().After(deadline) {
			t.Fatalf("the mismatched pair was not reported:\n%s", srv.stderr.String())
		}
		if serial, _ := servedSerial(t, base, ca.pool); serial != 101 {
			t.Fatalf("served serial %d while the pair on disk is mismatched, want the previous 101", serial)
		}
		time.Sleep(50 * time.Millisecond)
	}
	writeFile(t, keyFile, k2)
	for {
		serial, _ := servedSerial(t, base, ca.pool)
		if serial == 202 {
			break
		}
		if serial != 101 || time.Now().After(deadline) {
			t.Fatalf("served serial %d after the renewal, want 202", serial)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(srv.stderr.String(), "TLS certificate reloaded") {
		t.Fatalf("the reload was not logged:\n%s", srv.stderr.String())
	}
	if err := srv.stop(t); err != nil {
		t.Fatalf("serve: %v", err)
	}
	if bytes.Contains([]byte(srv.stderr.String()), k1[30:60]) {
		t.Fatal("the logs contain the private key")
	}
}

func TestServeTLSMisuse(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	c1, k1 := ca.issue(t, 1)
	_, k2 := ca.issue(t, 2)
	certFile, keyFile, otherKey := filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key"), filepath.Join(dir, "b.key")
	writeFile(t, certFile, c1)
	writeFile(t, keyFile, k1)
	writeFile(t, otherKey, k2)
	missing := filepath.Join(dir, "missing.crt")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", certFile}, "--tls-cert needs --tls-key"},
		{[]string{"--tls-key", keyFile}, "--tls-key needs --tls-cert"},
		{[]string{"--tls-cert", missing, "--tls-key", keyFile}, missing + " does not exist"},
		{[]string{"--tls-cert", certFile, "--tls-key", otherKey}, "private key does not match public key"},
		{[]string{"--tls-cert", keyFile, "--tls-key", keyFile}, "--tls-cert " + keyFile},
	} {
		args := append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--dev"}, tc.args...)
		var out bytes.Buffer
		err := run(context.Background(), args, func(string) string { return "" }, nil, &out, &out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want it to contain %q", tc.args, err, tc.want)
		}
	}
}

// TestPlainHTTPOffLoopbackWarns: plain HTTP stays the default, and on an
// address other machines reach it says that secrets cross the network in
// clear; on loopback it does not.
func TestPlainHTTPOffLoopbackWarns(t *testing.T) {
	const warning = "serving plain HTTP on a non-loopback address"
	for listen, want := range map[string]bool{"0.0.0.0:0": true, "127.0.0.1:0": false} {
		srv := start(t, nil, "serve", "--listen", listen, "--data-dir", t.TempDir(), "--dev", "--log-format", "json")
		srv.serveAddr(t)
		if got := strings.Contains(srv.stderr.String(), warning); got != want {
			t.Errorf("--listen %s: warning logged %v, want %v", listen, got, want)
		}
		if !strings.Contains(srv.stderr.String(), `"scheme":"http"`) {
			t.Errorf("--listen %s: the listening line does not say http", listen)
		}
	}
}
