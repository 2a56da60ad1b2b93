package media_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/livehooks/livehooks/media"
)

// hlsDir lays out root/outside.ts beside root/rec/{seg0.ts,seg1.ts} and
// returns root/rec.
func hlsDir(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	rec := filepath.Join(root, "rec")
	copyFile(t, "testdata/hls/seg0.ts", filepath.Join(rec, "seg0.ts"))
	copyFile(t, "testdata/hls/seg1.ts", filepath.Join(rec, "seg1.ts"))
	copyFile(t, "testdata/hls/seg0.ts", filepath.Join(root, "outside.ts"))
	return rec
}

func media1(uris ...string) string {
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n")
	for _, u := range uris {
		b.WriteString("#EXTINF:1.000,\n" + u + "\n")
	}
	b.WriteString("#EXT-X-ENDLIST\n")
	return b.String()
}

func TestProbeHLSPaths(t *testing.T) {
	t.Parallel()
	const seg0, seg1 = 16544, 15604
	tests := []struct {
		name     string
		playlist string
		want     error
		size     int64 // without the playlist itself
	}{
		{"plain", media1("seg0.ts", "seg1.ts"), nil, seg0 + seg1},
		{"inner dot-dot", media1("sub/../seg0.ts", "./seg1.ts"), nil, seg0 + seg1},
		{"percent-encoded", media1("seg%30.ts"), nil, seg0},
		{"query string", media1("seg0.ts?token=abc", "seg1.ts#t=1"), nil, seg0 + seg1},
		{"file counted once", media1("seg0.ts", "seg0.ts", "seg0.ts"), nil, seg0},
		{"parent", media1("seg0.ts", "../outside.ts"), media.ErrUnsupported, 0},
		{"deeper parent", media1("sub/../../outside.ts"), media.ErrUnsupported, 0},
		{"absolute path", media1("ABS"), media.ErrUnsupported, 0},
		{"http URL", media1("http://example.com/seg0.ts"), media.ErrUnsupported, 0},
		{"scheme-relative URL", media1("//example.com/seg0.ts"), media.ErrUnsupported, 0},
		{"file URL", media1("file:///etc/passwd"), media.ErrUnsupported, 0},
		{"symlink out", media1("link.ts"), media.ErrUnsupported, 0},
		{"missing segment", media1("seg0.ts", "seg9.ts"), media.ErrCorrupt, 0},
		{"directory as segment", media1("sub"), media.ErrUnsupported, 0},
		{"init segment outside", "#EXTM3U\n#EXT-X-MAP:URI=\"../outside.ts\"\n#EXTINF:1,\nseg0.ts\n", media.ErrUnsupported, 0},
		{"infinite EXTINF", strings.Replace(media1("seg0.ts"), "1.000", "1e999", 1), media.ErrCorrupt, 0},
		{"NaN EXTINF", strings.Replace(media1("seg0.ts"), "1.000", "NaN", 1), media.ErrCorrupt, 0},
		{"negative EXTINF", strings.Replace(media1("seg0.ts"), "1.000", "-5", 1), media.ErrCorrupt, 0},
		{"no EXTM3U", strings.TrimPrefix(media1("seg0.ts"), "#EXTM3U\n"), media.ErrCorrupt, 0},
		{"master to outside", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n../rec/../../x.m3u8\n", media.ErrUnsupported, 0},
		{"master to itself", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nindex.m3u8\n", nil, 0},
		{"master to master", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nm2.m3u8\n", media.ErrCorrupt, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := hlsDir(t)
			outside := filepath.Join(filepath.Dir(rec), "outside.ts")
			if err := os.Symlink(outside, filepath.Join(rec, "link.ts")); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(rec, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(rec, "m2.m3u8"), []byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nindex.m3u8\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			pl := strings.ReplaceAll(tt.playlist, "ABS", outside)
			p := filepath.Join(rec, "index.m3u8")
			if err := os.WriteFile(p, []byte(pl), 0o644); err != nil {
				t.Fatal(err)
			}
			info, err := media.ProbeHLS(p)
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("ProbeHLS = %+v, %v; want %v", info, err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := tt.size + int64(len(pl)); info.Size != want {
				t.Errorf("Size = %d, want %d", info.Size, want)
			}
		})
	}
}

func TestProbeHLSMasterResolution(t *testing.T) {
	t.Parallel()
	rec := hlsDir(t)
	index := media1("seg0.ts", "seg1.ts")
	master := "#EXTM3U\n" +
		"#EXT-X-STREAM-INF:BANDWIDTH=100000,RESOLUTION=640x360\nindex.m3u8\n" +
		"#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=1920x1080\nindex.m3u8\n"
	for name, s := range map[string]string{"index.m3u8": index, "master.m3u8": master} {
		if err := os.WriteFile(filepath.Join(rec, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	info, err := media.ProbeHLS(filepath.Join(rec, "master.m3u8"))
	if err != nil {
		t.Fatal(err)
	}
	want := media.Info{Format: "HLS", Size: int64(len(index) + len(master) + 16544 + 15604), Duration: seconds(2), Width: 1920, Height: 1080, HasVideo: true}
	checkInfo(t, info, want)
}

func TestProbeHLSEmptyPlaylist(t *testing.T) {
	t.Parallel()
	rec := hlsDir(t)
	p := filepath.Join(rec, "index.m3u8")
	pl := "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-ENDLIST\n"
	if err := os.WriteFile(p, []byte(pl), 0o644); err != nil {
		t.Fatal(err)
	}
	info, err := media.ProbeHLS(p)
	if err != nil {
		t.Fatal(err)
	}
	checkInfo(t, info, media.Info{Format: "HLS", Size: int64(len(pl))})
}
