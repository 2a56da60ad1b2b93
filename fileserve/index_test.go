package fileserve

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestIndexRemovesTheOldestOverTheCap(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	data := t.TempDir()
	var logs bytes.Buffer
	busy := filepath.Join(fx.rec, "live", "f1.flv")
	x, err := OpenIndex(IndexOptions{DataDir: data, MaxBytes: 2500, MinAge: time.Minute, Resolve: dirResolver(fx.rec),
		Busy: func(p string) bool { return p == busy }, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Clock: fx.clock})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	var files []string
	for i := range 6 {
		p := filepath.Join(fx.rec, "live", "f"+string(rune('0'+i))+".flv")
		if err := os.WriteFile(p, make([]byte, 1000), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
		fx.srv.index = x
		fx.srv.Link("p1", p, time.Hour)
		fx.clock.add(10 * time.Second)
	}
	x.Add("p1", fx.outside) // a list entry naming a file outside: never removed
	x.Add("p1", files[0])   // linked again: its age is its latest link
	os.WriteFile(fx.outside, make([]byte, 1000), 0o644)
	fx.clock.add(time.Minute - 25*time.Second) // f0..f3 are over a minute old, f4 and f5 not
	n, err := x.Trim()
	if err != nil {
		t.Fatal(err)
	}
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	// 7000 bytes listed: the outside file is dropped from the list, f2 and
	// f3 go; f1 is busy, f0 was linked again, f4 and f5 are young.
	if n != 2 || exists(files[2]) || exists(files[3]) || !exists(files[0]) || !exists(files[1]) || !exists(files[4]) || !exists(files[5]) || !exists(fx.outside) {
		t.Fatalf("removed %d; log:\n%s", n, logs.String())
	}
	if strings.Count(logs.String(), "served recording removed") != 2 || !strings.Contains(logs.String(), "f2.flv") {
		t.Fatalf("log:\n%s", logs.String())
	}
	list, _ := os.ReadFile(filepath.Join(data, IndexFile))
	if strings.Count(string(list), "\n") != 4 || strings.Contains(string(list), "secret") {
		t.Fatalf("list after trim:\n%s", list)
	}
	if fi, _ := os.Stat(filepath.Join(data, IndexFile)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("list mode %v", fi.Mode())
	}
	// Later the young files age; the busy one is still kept, and f0, linked
	// last, goes last.
	fx.clock.add(time.Hour)
	if n, err := x.Trim(); n != 2 || err != nil || exists(files[4]) || exists(files[5]) || !exists(files[1]) || !exists(files[0]) {
		t.Fatalf("second trim: %d %v", n, err)
	}
	x.Add("p1", files[0]) // appends still work after the rewrite
	list, _ = os.ReadFile(filepath.Join(data, IndexFile))
	if strings.Count(string(list), "f0.flv") != 2 {
		t.Fatalf("list:\n%s", list)
	}
}

func TestIndexWithoutCapRemovesNothing(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	x, err := OpenIndex(IndexOptions{DataDir: t.TempDir(), Resolve: dirResolver(fx.rec), Clock: fx.clock})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	x.Add("p1", filepath.Join(fx.rec, "live", "cam-1.flv"))
	fx.clock.add(24 * time.Hour)
	if n, err := x.Trim(); n != 0 || err != nil {
		t.Fatalf("%d %v", n, err)
	}
	x.Run(t.Context(), time.Millisecond) // returns at once without a cap
}

// TestIndexListsAPlaylistsSegments: the cap counts and removes an HLS
// recording's segments with its playlist.
func TestIndexListsAPlaylistsSegments(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	data := t.TempDir()
	x, err := OpenIndex(IndexOptions{DataDir: data, MaxBytes: 1, MinAge: time.Minute, Resolve: dirResolver(fx.rec), Clock: fx.clock})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	fx.srv.index = x
	fx.srv.Link("p1", filepath.Join(fx.rec, "hls", "index.m3u8"), time.Hour)
	list, _ := os.ReadFile(filepath.Join(data, IndexFile))
	for _, name := range []string{"index.m3u8", "init.mp4", "seg1.ts", "sub/seg2.ts"} {
		if !strings.Contains(string(list), "/hls/"+name+`"`) {
			t.Fatalf("%s not listed:\n%s", name, list)
		}
	}
	fx.clock.add(time.Hour)
	if n, err := x.Trim(); n != 4 || err != nil {
		t.Fatalf("removed %d, %v", n, err)
	}
	left, _ := filepath.Glob(filepath.Join(fx.rec, "hls", "*"))
	if len(left) != 1 || filepath.Base(left[0]) != "sub" {
		t.Fatalf("left %v", left)
	}
}
