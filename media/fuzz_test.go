package media_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/livehooks/livehooks/media"
)

// checkProbe asserts the invariants of any probe of in-memory data: errors
// wrap a sentinel, results are sane.
func checkProbe(t *testing.T, info media.Info, err error, size int) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, media.ErrCorrupt) && !errors.Is(err, media.ErrUnsupported) {
			t.Fatalf("error wraps no sentinel: %v", err)
		}
		return
	}
	if info.Size != int64(size) || info.Duration < 0 || info.Width < 0 || info.Height < 0 ||
		(info.Width > 0) != (info.Height > 0) || (info.Width > 0 && !info.HasVideo) {
		t.Fatalf("implausible %+v for %d bytes", info, size)
	}
}

func FuzzProbeFLV(f *testing.F) {
	// Small seeds keep the fuzzer fast: the first tags of video.flv
	// (onMetaData, both sequence headers, a few frames) and a truncated tag.
	f.Add(mustReadF(f, "testdata/video.flv")[:4000])
	f.Add(mustReadF(f, "testdata/trailing.flv"))
	seq := mustReadF(f, "testdata/video.flv")[296+11 : 296+11+42]
	f.Add(newFLV().tag(18, 0, onMetaData([]byte("\x02\x00\x0d@setDataFrame"), "width", 640.0, "height", 480.0, "duration", 3.0)).
		tag(9, 0, []byte{0x22, 0, 0}).tag(9, 40, []byte{0x90, 'a', 'v', 'c', '1'}).b)
	f.Add(newFLV().tag(9, 0, append([]byte{0x90, 'a', 'v', 'c', '1'}, seq[5:]...)).tag(9, 1<<24, avcFrame).tag(0x28, 5, aacFrame).b)
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := media.ProbeFLV(bytes.NewReader(data), int64(len(data)))
		checkProbe(t, info, err, len(data))
	})
}

func FuzzProbeMP4(f *testing.F) {
	for _, name := range []string{"video.mp4", "fragmented.mp4", "hls-fmp4/init.mp4"} {
		f.Add(emptyMdat(mustReadF(f, filepath.Join("testdata", name))))
	}
	video := trak(1, "vide", 90000, 0, 1280, 720)
	f.Add(bytes.Join([][]byte{ftyp, box("moov", mvhd(1000, 0), video, box("mvex", fullBox("mehd", 0, u32(7000)), trex(1, 3000))),
		moof(1, 0, trun(60)), moof(1, 9000, trun(3, 90000, 45000, 45000))}, nil))
	f.Add(bytes.Join([][]byte{ftyp, u32(1), []byte("mdat"), u32(0), u32(24), make([]byte, 8), box("moov", mvhd(1000, 1000), video)}, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := media.ProbeMP4(bytes.NewReader(data))
		checkProbe(t, info, err, len(data))
	})
}

// FuzzProbeTSFile fuzzes the probe of a lone MPEG-TS file (MediaMTX's
// recordFormat mpegts): the head scan for the picture and first timestamp,
// the tail scan for the last.
func FuzzProbeTSFile(f *testing.F) {
	for _, name := range []string{"hls/seg0.ts", "hls/seg1.ts"} {
		b := mustReadF(f, filepath.Join("testdata", name))
		f.Add(b)
		f.Add(b[:188*4])
		f.Add(b[len(b)/2:])
	}
	f.Add(bytes.Repeat([]byte{0x47, 0x40, 0x00, 0x10}, 47))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := media.ProbeTS(bytes.NewReader(data), int64(len(data)))
		checkProbe(t, info, err, len(data))
		if err == nil && info.Duration > 1<<33*time.Second/90000 {
			t.Fatalf("duration %v beyond the PTS clock's range", info.Duration)
		}
	})
}

// FuzzProbeHLSPlaylist fuzzes the playlist; the files it may name are real
// fixtures in a temporary directory, beside which lies a 1 GiB sparse file
// (also reachable through a symbolic link) that must never be counted.
func FuzzProbeHLSPlaylist(f *testing.F) {
	root := f.TempDir()
	rec := filepath.Join(root, "rec")
	for src, dst := range map[string]string{
		"hls/seg0.ts": "seg0.ts", "hls/seg1.ts": "seg1.ts", "hls/index.m3u8": "index.m3u8",
		"hls-fmp4/init.mp4": "init.mp4", "hls-fmp4/seg0.m4s": "seg0.m4s", "video.flv": "sub/video.flv",
	} {
		b := mustReadF(f, filepath.Join("testdata", src))
		if err := os.MkdirAll(filepath.Dir(filepath.Join(rec, dst)), 0o755); err != nil {
			f.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(rec, dst), b, 0o644); err != nil {
			f.Fatal(err)
		}
	}
	outside := filepath.Join(root, "outside.ts")
	if err := os.WriteFile(outside, nil, 0o644); err != nil {
		f.Fatal(err)
	}
	if err := os.Truncate(outside, 1<<30); err != nil {
		f.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(rec, "link.ts")); err != nil {
		f.Fatal(err)
	}
	inside := dirSizeF(f, rec)

	for _, name := range []string{"hls/index.m3u8", "hls/master.m3u8", "hls-fmp4/index.m3u8"} {
		f.Add(mustReadF(f, filepath.Join("testdata", name)))
	}
	f.Add([]byte("#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:1.5,\nseg0.m4s\n#EXTINF:1,\nsub/../seg0.ts\n#EXT-X-BYTERANGE:100@0\n#EXTINF:1,\nseg1.ts\n#EXT-X-ENDLIST\n"))
	f.Add([]byte("#EXTM3U\n#EXTINF:1,\n../outside.ts\n#EXTINF:1,\nlink.ts\n#EXTINF:1,\nhttp://example.com/x.ts\n"))
	f.Add([]byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=1280x720\nindex.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2\np.m3u8\n"))
	f.Add([]byte("#EXTM3U\n#EXTINF:1,\nsub/video.flv\n#EXTINF:NaN,\nseg%30.ts?x#y\n"))
	f.Fuzz(func(t *testing.T, playlist []byte) {
		p := filepath.Join(rec, "p.m3u8")
		if err := os.WriteFile(p, playlist, 0o644); err != nil {
			t.Fatal(err)
		}
		info, err := media.ProbeHLS(p)
		if err != nil {
			return // I/O errors (a name too long…) are fine as long as nothing panics
		}
		if info.Size > inside+int64(len(playlist)) || info.Duration < 0 || info.Width < 0 || info.Height < 0 {
			t.Fatalf("implausible %+v (files inside the directory total %d bytes)", info, inside)
		}
	})
}

func mustReadF(f *testing.F, name string) []byte {
	b, err := os.ReadFile(name)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

func dirSizeF(f *testing.F, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		n += fi.Size()
		return err
	})
	if err != nil {
		f.Fatal(err)
	}
	return n
}

// emptyMdat returns an MP4 file with its top-level mdat boxes emptied: the
// structure the probe reads, without the bulk that slows the fuzzer.
func emptyMdat(b []byte) []byte {
	var out []byte
	for len(b) >= 8 {
		n := int(binary.BigEndian.Uint32(b))
		if n < 8 || n > len(b) {
			break
		}
		if string(b[4:8]) == "mdat" {
			out = append(out, 0, 0, 0, 8, 'm', 'd', 'a', 't')
		} else {
			out = append(out, b[:n]...)
		}
		b = b[n:]
	}
	return out
}
