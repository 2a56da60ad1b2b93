package objstore

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/egress"
)

// TestClientCache: one client per account, replaced when the secret, the
// scheme or the region changes.
func TestClientCache(t *testing.T) {
	s := New(Options{MaxClients: 2})
	st := &livehooks.StorageSettings{Endpoint: "127.0.0.1:9000", Bucket: "b", AccessKey: "ak", SecretKey: "secret-1"}
	c1, err := s.client(st)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := s.client(st); c != c1 {
		t.Fatal("same settings, new client")
	}
	other := *st
	other.Bucket, other.Prefix, other.Presign = "other", "p", true
	if c, _ := s.client(&other); c != c1 {
		t.Fatal("bucket-level settings made a new client")
	}
	for _, mod := range []func(*livehooks.StorageSettings){
		func(s *livehooks.StorageSettings) { s.SecretKey = "secret-2" },
		func(s *livehooks.StorageSettings) { s.Secure = true },
		func(s *livehooks.StorageSettings) { s.Region = "eu-west-1" },
	} {
		changed := *st
		mod(&changed)
		if c, _ := s.client(&changed); c == c1 {
			t.Fatalf("changed settings %+v reused the client", changed)
		}
		if c, _ := s.client(st); c == c1 {
			t.Fatal("the entry was not replaced")
		} else {
			c1 = c
		}
	}
	for _, ak := range []string{"a", "b", "c"} {
		changed := *st
		changed.AccessKey = ak
		if _, err := s.client(&changed); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.clients) > 2 {
		t.Fatalf("cache holds %d clients, max 2", len(s.clients))
	}
}

func TestLocalPath(t *testing.T) {
	for _, tc := range []struct {
		dir, uri, want string
		ok             bool
	}{
		{".", "seg.ts", "seg.ts", true},
		{".", "a/seg.ts?x=1#f", "a/seg.ts", true},
		{"v1", "../v1/seg.ts", "v1/seg.ts", true},
		{"v1", "../seg.ts", "seg.ts", true},
		{".", "../seg.ts", "", false},
		{".", "/abs.ts", "", false},
		{".", "http://h/x.ts", "", false},
		{".", "//h/x.ts", "", false},
		{".", "data:x", "", false},
		{".", "a\\..\\..\\x.ts", "", false},
		{".", "%zz", "", false},
	} {
		got, ok := localPath(tc.dir, tc.uri)
		if got != tc.want || ok != tc.ok {
			t.Errorf("localPath(%q, %q) = %q %v, want %q %v", tc.dir, tc.uri, got, ok, tc.want, tc.ok)
		}
	}
}

func TestPlaylistURIs(t *testing.T) {
	got := playlistURIs([]byte("#EXTM3U\r\n#EXT-X-MAP:BYTERANGE=\"1@0\",URI=\"init.mp4\"\r\n#EXTINF:1,\r\n a.ts \r\n\r\n#EXT-X-KEY:URI=\"k\"\r\nb.ts"))
	if want := []string{"init.mp4", "a.ts", "b.ts"}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("uris = %q, want %q", got, want)
	}
}

func TestObjectKeyAndURL(t *testing.T) {
	for _, tc := range [][3]string{
		{"", "a/b.flv", "a/b.flv"},
		{"/rec/", "/a/b.flv", "rec/a/b.flv"},
		{"rec", "a.flv", "rec/a.flv"},
		{"rec", "", ""},
	} {
		if got := ObjectKey(tc[0], tc[1]); got != tc[2] {
			t.Errorf("ObjectKey(%q, %q) = %q, want %q", tc[0], tc[1], got, tc[2])
		}
	}
	st := &livehooks.StorageSettings{Endpoint: "s3.example.com", Secure: true, Bucket: "b"}
	if got := ObjectURL(st, "a b/c#d.flv"); got != "https://s3.example.com/b/a%20b/c%23d.flv" {
		t.Fatalf("url = %s", got)
	}
}

// TestUploadRefusesHugeHeaders: a storage endpoint answering megabytes of
// headers gets its answer refused after egress.MaxResponseHeaderBytes.
func TestUploadRefusesHugeHeaders(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	head := "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" + strings.Repeat("X-Padding: "+strings.Repeat("a", 1000)+"\r\n", 2048) + "\r\n"
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				req, err := http.ReadRequest(r)
				if err != nil {
					return
				}
				// Read the whole request before answering, and close only
				// once the client has: a connection closed under a request
				// still being written fails the write instead of the read
				// of the answer this test is about.
				_, _ = io.Copy(io.Discard, req.Body)
				_, _ = c.Write([]byte(head))
				_, _ = io.Copy(io.Discard, r)
			}()
		}
	}()
	file := filepath.Join(t.TempDir(), "seg.ts")
	if err := os.WriteFile(file, []byte("segment"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := New(Options{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, MaxRetries: 1})
	st := &livehooks.StorageSettings{Endpoint: ln.Addr().String(), Region: "us-east-1", Bucket: "bucket", AccessKey: "ak", SecretKey: "sk"}
	_, err = s.Upload(context.Background(), st, "live/s/seg.ts", file)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("exceeded %d bytes", egress.MaxResponseHeaderBytes)) {
		t.Fatalf("upload to an endpoint with 2 MiB of headers: %v", err)
	}
}
