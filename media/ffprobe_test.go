package media_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/media"
)

// requireFFmpeg returns the paths of ffmpeg and ffprobe. Without them the
// test is skipped on a developer's machine and fails in CI, where the
// comparison with ffprobe is part of what is being checked.
func requireFFmpeg(t *testing.T) (ffmpeg, ffprobe string) {
	t.Helper()
	ffmpeg, err1 := exec.LookPath("ffmpeg")
	ffprobe, err2 := exec.LookPath("ffprobe")
	if err1 != nil || err2 != nil {
		if os.Getenv("CI") == "" {
			t.Skip("ffmpeg/ffprobe not on PATH: skipping the comparison with ffprobe (apt-get install ffmpeg to run it; it is required when CI is set)")
		}
		t.Fatal("ffmpeg/ffprobe not on PATH and CI is set: install ffmpeg (apt-get install ffmpeg)")
	}
	return ffmpeg, ffprobe
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return out
}

// ffprobeInfo is what ffprobe says about a file, in Info's terms.
func ffprobeInfo(t *testing.T, ffprobe, path string) media.Info {
	t.Helper()
	cmd := exec.Command(ffprobe, "-v", "error", "-show_entries", "format=duration:stream=codec_type,width,height", "-of", "json", path)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var r struct {
		Streams []struct {
			CodecType string `json:"codec_type"`
			Width     int    `json:"width"`
			Height    int    `json:"height"`
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("ffprobe output %s: %v", out, err)
	}
	var info media.Info
	for _, s := range r.Streams {
		if s.CodecType == "video" && !info.HasVideo {
			info.HasVideo, info.Width, info.Height = true, s.Width, s.Height
		}
	}
	sec, err := strconv.ParseFloat(r.Format.Duration, 64)
	if err != nil {
		t.Fatalf("ffprobe duration %q: %v", r.Format.Duration, err)
	}
	info.Duration = time.Duration(sec * float64(time.Second))
	return info
}

// dirSize sums the regular files under dir.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
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
		t.Fatal(err)
	}
	return n
}

// TestProbeMatchesFFprobe encodes 1280x720 recordings at run time, remuxes
// them into every supported container, and compares Probe with ffprobe.
func TestProbeMatchesFFprobe(t *testing.T) {
	ffmpeg, ffprobe := requireFFmpeg(t)
	t.Parallel()
	dir := t.TempDir()
	q := []string{"-hide_banner", "-loglevel", "error", "-y"}
	av := filepath.Join(dir, "src-av.mp4")
	run(t, ffmpeg, append(q, "-f", "lavfi", "-i", "testsrc=size=1280x720:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-ac", "1", av)...)
	audio := filepath.Join(dir, "src-a.mp4")
	run(t, ffmpeg, append(q, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "3", "-c:a", "aac", "-ac", "1", audio)...)

	hls := []string{"-f", "hls", "-hls_time", "1", "-hls_list_size", "0", "-hls_playlist_type", "vod"}
	outputs := []struct {
		name string
		src  string
		args []string
	}{
		{"av.flv", av, nil},
		{"av.mp4", av, []string{"-movflags", "+faststart"}},
		{"av-frag.mp4", av, []string{"-movflags", "+frag_keyframe+empty_moov+default_base_moof"}},
		{"av.ts", av, nil},
		{"av-hls/index.m3u8", av, hls},
		{"av-fmp4/index.m3u8", av, append(append([]string(nil), hls...), "-hls_segment_type", "fmp4")},
		{"a.flv", audio, nil},
		{"a.mp4", audio, nil},
		{"a-hls/index.m3u8", audio, hls},
	}
	formats := map[string]string{".flv": livehooks.FormatFLV, ".mp4": livehooks.FormatMP4, ".m3u8": livehooks.FormatHLS, ".ts": livehooks.FormatHLS}
	for _, o := range outputs {
		t.Run(o.name, func(t *testing.T) {
			out := filepath.Join(dir, o.name)
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				t.Fatal(err)
			}
			args := append(append(append(q, "-i", o.src, "-c", "copy"), o.args...), out)
			run(t, ffmpeg, args...)

			want := ffprobeInfo(t, ffprobe, out)
			want.Format = formats[filepath.Ext(out)]
			if filepath.Ext(out) == ".m3u8" {
				want.Size = dirSize(t, filepath.Dir(out))
			} else {
				fi, err := os.Stat(out)
				if err != nil {
					t.Fatal(err)
				}
				want.Size = fi.Size()
			}
			if want.HasVideo && (want.Width != 1280 || want.Height != 720) {
				t.Fatalf("ffprobe says %dx%d", want.Width, want.Height)
			}
			got, err := media.Probe(out)
			if err != nil {
				t.Fatal(err)
			}
			checkInfo(t, got, want)
		})
	}
}

// TestProbeTSSegments cuts a 1280x720 stream into MPEG-TS segments the way
// MediaMTX records with recordFormat mpegts (each segment starts on a
// keyframe, timestamps continue across segments) and compares each with
// ffprobe's video stream; an audio-only segment's duration is estimated
// from its PES timestamps.
func TestProbeTSSegments(t *testing.T) {
	ffmpeg, ffprobe := requireFFmpeg(t)
	t.Parallel()
	dir := t.TempDir()
	q := []string{"-hide_banner", "-loglevel", "error", "-y"}
	run(t, ffmpeg, append(q, "-f", "lavfi", "-i", "testsrc=size=1280x720:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "5", "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "1",
		"-f", "segment", "-segment_format", "mpegts", "-segment_time", "2", filepath.Join(dir, "seg%d.ts"))...)
	segs, err := filepath.Glob(filepath.Join(dir, "seg*.ts"))
	if err != nil || len(segs) < 2 {
		t.Fatalf("ffmpeg wrote %v (%v), want several segments", segs, err)
	}
	var total time.Duration
	for _, seg := range segs {
		got, err := media.Probe(seg)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(seg)
		if err != nil {
			t.Fatal(err)
		}
		want := media.Info{Format: livehooks.FormatHLS, Size: fi.Size(), Duration: ffprobeVideoDuration(t, ffprobe, seg), Width: 1280, Height: 720, HasVideo: true}
		checkInfo(t, got, want)
		total += got.Duration
	}
	if d := total - 5*time.Second; d > tolerance || d < -tolerance {
		t.Errorf("segments total %v, want 5s", total)
	}

	audio := filepath.Join(dir, "audio.ts")
	run(t, ffmpeg, append(q, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "3", "-c:a", "aac", "-ac", "1", audio)...)
	got, err := media.Probe(audio)
	if err != nil {
		t.Fatal(err)
	}
	// Several AAC frames share a PES packet: the last packet's length is
	// estimated, so the duration is within a PES of the truth.
	if d := got.Duration - 3*time.Second; got.Format != livehooks.FormatHLS || got.HasVideo || got.Width != 0 || d > 300*time.Millisecond || d < -300*time.Millisecond {
		t.Errorf("audio-only TS: %+v, want HLS, no video, about 3s", got)
	}
}

// ffprobeVideoDuration is ffprobe's duration of a file's video stream.
func ffprobeVideoDuration(t *testing.T, ffprobe, path string) time.Duration {
	t.Helper()
	out := run(t, ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=duration", "-of", "csv=p=0", path)
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n") // the stream is listed again under its program
	sec, err := strconv.ParseFloat(first, 64)
	if err != nil {
		t.Fatalf("ffprobe video duration %q: %v", out, err)
	}
	return time.Duration(sec * float64(time.Second))
}
