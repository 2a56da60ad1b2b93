package objstore

import (
	"testing"

	"github.com/livehooks/livehooks"
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
