package media

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/livehooks/livehooks"
)

// Errors wrapped by every probe failure; test with errors.Is.
var (
	// ErrCorrupt: the file is not what its format says (bad signature, a box
	// or tag that does not fit, a missing index, a missing HLS segment).
	ErrCorrupt = errors.New("media: corrupt file")
	// ErrUnsupported: the file is of a format or variant this package does not
	// read, or an HLS playlist refers to something it will not open (a URL, a
	// path outside the playlist's directory).
	ErrUnsupported = errors.New("media: unsupported file")
)

// Info is what a probe learns about a recording.
type Info struct {
	// Format is livehooks.FormatFLV, livehooks.FormatMP4 or livehooks.FormatHLS
	// (an HLS playlist, or a single MPEG-TS segment).
	Format string
	// Size in bytes; for HLS the playlist plus every file it lists (each
	// counted once).
	Size int64
	// Duration of the media: the span of the tags' timestamps in FLV, the
	// movie (or longest track, or summed fragments) in MP4, the sum of the
	// EXTINF durations in HLS, the span of the presentation timestamps in
	// MPEG-TS.
	Duration time.Duration
	// Width and Height of the video in pixels, as the H.264 SPS (FLV, HLS/TS)
	// or the sample entry (MP4) code them; 0 when unknown or no video.
	Width, Height int
	// HasVideo reports whether the file holds video frames (an FLV with only
	// sequence headers, such as the tiny trailing file nginx-rtmp leaves, has
	// none).
	HasVideo bool
}

// Caps on allocations driven by length fields in a file.
const (
	maxConfigSize   = 64 << 10 // an AVC decoder configuration record or SPS
	maxScriptSize   = 1 << 20  // an FLV script (onMetaData) tag
	maxBoxRead      = 1 << 20  // an MP4 box we decode (mvhd, tkhd, sample entry…)
	maxTrunSize     = 16 << 20 // an MP4 trun box
	maxPlaylistSize = 4 << 20  // an HLS playlist
	maxTSScan       = 8 << 20  // bytes of a TS segment searched for an SPS
)

// Probe reads the recording at path. The parser is chosen by the content
// (FLV signature, MP4 box, #EXTM3U, TS sync bytes), else by the extension
// (.flv; .mp4, .m4v, .mov; .m3u8; .ts): a recorder may name a file after a
// format it does not write (nginx-rtmp writes FLV whatever its
// record_suffix), and a damaged file is read as what its name says.
func Probe(path string) (Info, error) {
	info, err := probe(path)
	if err != nil {
		return Info{}, fmt.Errorf("probe %s: %w", path, err)
	}
	return info, nil
}

// kindByExtension names the format a file's extension promises.
var kindByExtension = map[string]string{
	".flv": livehooks.FormatFLV, ".mp4": livehooks.FormatMP4, ".m4v": livehooks.FormatMP4, ".mov": livehooks.FormatMP4,
	".m3u8": livehooks.FormatHLS, ".ts": formatTS,
}

func probe(path string) (Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return Info{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Info{}, err
	}
	if !st.Mode().IsRegular() {
		return Info{}, fmt.Errorf("%w: not a regular file", ErrUnsupported)
	}
	kind, err := sniff(f)
	if err != nil {
		return Info{}, err
	}
	if kind == "" {
		kind = kindByExtension[strings.ToLower(filepath.Ext(path))]
	}
	switch kind {
	case livehooks.FormatFLV:
		return ProbeFLV(f, st.Size())
	case livehooks.FormatMP4:
		return ProbeMP4(io.NewSectionReader(f, 0, st.Size()))
	case livehooks.FormatHLS:
		return ProbeHLS(path)
	case formatTS:
		return ProbeTS(f, st.Size())
	}
	return Info{}, fmt.Errorf("%w: unrecognised file format", ErrUnsupported)
}

// mp4TopLevel are box types that open an MP4 (or QuickTime, or fMP4 segment) file.
var mp4TopLevel = []string{"ftyp", "styp", "moov", "moof", "mdat", "free", "skip", "wide", "pnot", "sidx"}

// formatTS is the kind of a lone MPEG-TS file (reported as HLS).
const formatTS = "TS"

// sniff names the format of r from its first bytes, or "" when unknown.
func sniff(r io.ReaderAt) (string, error) {
	head := make([]byte, 2*tsPacketSize+1)
	n, err := r.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("FLV")):
		return livehooks.FormatFLV, nil
	case bytes.HasPrefix(bytes.TrimPrefix(head, []byte("\xef\xbb\xbf")), []byte("#EXTM3U")):
		return livehooks.FormatHLS, nil
	case len(head) > 2*tsPacketSize && head[0] == tsSync && head[tsPacketSize] == tsSync && head[2*tsPacketSize] == tsSync:
		return formatTS, nil
	case len(head) >= 8:
		for _, t := range mp4TopLevel {
			if string(head[4:8]) == t {
				return livehooks.FormatMP4, nil
			}
		}
	}
	return "", nil
}

// maxSeconds bounds durations so that converting them never overflows
// time.Duration (which holds about 292 years).
const maxSeconds = 1 << 32

// ticksDuration converts ticks of a 1/timescale clock to a Duration, or
// reports false when the result would be implausible (over ~136 years).
func ticksDuration(ticks uint64, timescale uint32) (time.Duration, bool) {
	if timescale == 0 {
		return 0, false
	}
	ts := uint64(timescale)
	sec, rem := ticks/ts, ticks%ts
	if sec >= maxSeconds {
		return 0, false
	}
	return time.Duration(sec)*time.Second + time.Duration(rem*uint64(time.Second)/ts), true
}

// window serves small reads from an io.ReaderAt through one buffer, so that
// walking thousands of tags costs a read per 64 KiB instead of one per tag.
type window struct {
	r    io.ReaderAt
	size int64
	buf  []byte
	off  int64 // file offset of buf[0]
}

func newWindow(r io.ReaderAt, size int64) *window {
	return &window{r: r, size: size, buf: make([]byte, 0, min(size, 64<<10))}
}

// at returns the n bytes at off, which the caller has checked lie within the
// file. The slice is valid until the next call; n may exceed the window (the
// callers cap n themselves).
func (w *window) at(off int64, n int) ([]byte, error) {
	if off >= w.off && off+int64(n) <= w.off+int64(len(w.buf)) {
		return w.buf[off-w.off:][:n], nil
	}
	if n > cap(w.buf) {
		b := make([]byte, n)
		if got, err := w.r.ReadAt(b, off); got < n {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		return b, nil
	}
	m := int64(cap(w.buf))
	if rest := w.size - off; rest < m {
		m = rest
	}
	if int64(n) > m {
		return nil, io.ErrUnexpectedEOF
	}
	w.buf = w.buf[:m]
	got, err := w.r.ReadAt(w.buf, off)
	if got < n {
		w.buf = w.buf[:0]
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	w.buf, w.off = w.buf[:got], off
	return w.buf[:n], nil
}
