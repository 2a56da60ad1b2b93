package media_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/media"
)

// tolerance is how far a probed duration may be from ffprobe's.
const tolerance = 100 * time.Millisecond

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// The expected figures are ffprobe's (ffmpeg 5.1.9, Debian 12), from
//
//	ffprobe -v error -show_entries format=duration,size:stream=codec_type,width,height -of compact FILE
//
// run in testdata/. For truncated.flv ffprobe's format duration (2.023) is
// onMetaData's, which a truncated file belies; its last complete packet is
// at 0.903 s:
//
//	ffprobe -v error -show_entries packet=pts_time -of csv truncated.flv | tail -2
func TestProbeFixtures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file     string
		format   string
		size     int64
		duration time.Duration
		width    int
		height   int
		hasVideo bool
	}{
		{"video.flv", livehooks.FormatFLV, 25168, seconds(2.023), 320, 240, true},
		{"truncated.flv", livehooks.FormatFLV, 12000, seconds(0.903), 320, 240, true},
		// nginx-rtmp's trailing file: sequence headers, no frame (ffprobe:
		// "Invalid data found when processing input").
		{"trailing.flv", livehooks.FormatFLV, 92, 0, 0, 0, false},
		{"video.mp4", livehooks.FormatMP4, 24935, seconds(2.0), 320, 240, true},
		{"fragmented.mp4", livehooks.FormatMP4, 24857, seconds(2.023281), 320, 240, true},
		{"hls/index.m3u8", livehooks.FormatHLS, 165 + 16544 + 15604, seconds(2.0), 320, 180, true},
		{"hls/master.m3u8", livehooks.FormatHLS, 121 + 165 + 16544 + 15604, seconds(2.0), 320, 180, true},
		{"hls-fmp4/index.m3u8", livehooks.FormatHLS, 193 + 1353 + 12202 + 12033, seconds(2.0), 256, 144, true},
		// A lone MPEG-TS segment (MediaMTX's recordFormat mpegts): ffprobe's
		// video stream duration (its format duration, 1.023 and 1.0, counts
		// the audio that starts before the video in seg0).
		{"hls/seg0.ts", livehooks.FormatHLS, 16544, seconds(1.0), 320, 180, true},
		{"hls/seg1.ts", livehooks.FormatHLS, 15604, seconds(1.0), 320, 180, true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			info, err := media.Probe(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			checkInfo(t, info, media.Info{Format: tt.format, Size: tt.size, Duration: tt.duration, Width: tt.width, Height: tt.height, HasVideo: tt.hasVideo})
		})
	}
}

// checkInfo compares got with want, durations within tolerance.
func checkInfo(t *testing.T, got, want media.Info) {
	t.Helper()
	d := got.Duration - want.Duration
	if got.Format != want.Format || got.Size != want.Size || got.Width != want.Width ||
		got.Height != want.Height || got.HasVideo != want.HasVideo || d > tolerance || d < -tolerance {
		t.Errorf("got  %+v\nwant %+v (duration ±%v)", got, want, tolerance)
	}
}

// copyFile copies a fixture to dst.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestProbeSniffsUnknownExtensions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	copyFile(t, "testdata/video.flv", filepath.Join(dir, "a.bin"))
	copyFile(t, "testdata/fragmented.mp4", filepath.Join(dir, "b"))
	copyFile(t, "testdata/hls/index.m3u8", filepath.Join(dir, "c.txt"))
	copyFile(t, "testdata/hls/seg0.ts", filepath.Join(dir, "seg0.ts"))
	copyFile(t, "testdata/hls/seg1.ts", filepath.Join(dir, "seg1.ts"))
	copyFile(t, "testdata/hls/seg0.ts", filepath.Join(dir, "d.mpg"))
	for name, want := range map[string]string{"a.bin": livehooks.FormatFLV, "b": livehooks.FormatMP4, "c.txt": livehooks.FormatHLS, "d.mpg": livehooks.FormatHLS} {
		info, err := media.Probe(filepath.Join(dir, name))
		if err != nil || info.Format != want || info.Width == 0 {
			t.Errorf("Probe(%s) = %+v, %v; want format %s", name, info, err, want)
		}
	}
}

// TestProbeReadsTheContentNotTheName: a file is read as what it is, whatever
// its name says (nginx-rtmp writes FLV even with record_suffix .mp4).
func TestProbeReadsTheContentNotTheName(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, src := range map[string]string{"cam1-1.mp4": "video.flv", "b.flv": "video.mp4", "c.mp4": "hls/seg0.ts", "d.ts": "fragmented.mp4"} {
		copyFile(t, filepath.Join("testdata", src), filepath.Join(dir, name))
		want, err := media.Probe(filepath.Join("testdata", src))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := media.Probe(filepath.Join(dir, name)); err != nil || got != want {
			t.Errorf("Probe(%s holding %s) = %+v, %v; want %+v", name, src, got, err, want)
		}
	}
}

func TestProbeErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	flv, err := os.ReadFile("testdata/video.flv")
	if err != nil {
		t.Fatal(err)
	}
	mp4, err := os.ReadFile("testdata/video.mp4")
	if err != nil {
		t.Fatal(err)
	}
	badTag := append([]byte(nil), flv...)
	badTag[375] = 7 // the tag at offset 375 (an AAC frame) gets an undefined type
	ts := mustRead(t, "testdata/hls/seg0.ts")
	noPAT := append([]byte(nil), ts...)
	for i := 0; i+188 <= len(noPAT); i += 188 {
		noPAT[i+1], noPAT[i+2] = 0x1f, 0xff // every packet a null packet
	}
	files := map[string]struct {
		data []byte
		want error
	}{
		"empty.flv":        {nil, media.ErrCorrupt},
		"short.flv":        {[]byte("FLV\x01"), media.ErrCorrupt},
		"notflv.flv":       {[]byte("FLX\x01\x05\x00\x00\x00\x09 not an FLV"), media.ErrCorrupt},
		"badoffset.flv":    {append([]byte("FLV\x01\x05\xff\xff\xff\xff"), flv[9:]...), media.ErrCorrupt},
		"badtag.flv":       {badTag, media.ErrCorrupt},
		"empty.mp4":        {nil, media.ErrCorrupt},
		"notmp4.mp4":       {[]byte("\x00\x00\x00\x10fytp not an MP4"), media.ErrCorrupt},
		"nomoov.mp4":       {mp4[:4000], media.ErrCorrupt},                                     // ffmpeg writes moov last
		"cutmoov.mp4":      {mp4[:len(mp4)-200], media.ErrCorrupt},                             // moov overruns the file
		"tinybox.mp4":      {[]byte("\x00\x00\x00\x04moov\x00\x00\x00\x00"), media.ErrCorrupt}, // size below the header
		"unknown.bin":      {[]byte("hello, world, this is not media"), media.ErrUnsupported},
		"empty":            {nil, media.ErrUnsupported},
		"notts.ts":         {[]byte("neither a TS packet nor anything else this probe reads"), media.ErrCorrupt},
		"short.ts":         {ts[:100], media.ErrCorrupt},
		"nopat.ts":         {noPAT, media.ErrCorrupt},
		"onlypat.ts":       {ts[:188], media.ErrCorrupt},
		"notplaylist.m3u8": {[]byte("seg0.ts\n"), media.ErrCorrupt},
	}
	for name, f := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			t.Fatal(err)
		}
		if info, err := media.Probe(p); !errors.Is(err, f.want) {
			t.Errorf("Probe(%s) = %+v, %v; want %v", name, info, err, f.want)
		}
	}
	if _, err := media.Probe(filepath.Join(dir, "missing.flv")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Probe(missing) = %v, want ErrNotExist", err)
	}
	if _, err := media.Probe(dir + "/"); err == nil {
		t.Errorf("Probe(directory) succeeded")
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
