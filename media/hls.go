package media

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/grafov/m3u8"

	"github.com/livehooks/livehooks"
)

// maxSegmentProbes is how many segments are opened looking for the picture size.
const maxSegmentProbes = 3

// ProbeHLS reads the HLS playlist at path and the files it lists. A media
// playlist's duration is the sum of its EXTINF durations, its size the
// playlist's plus every segment's (and EXT-X-MAP init segment's), each file
// counted once; width and height come from the first segments' H.264 SPS
// (MPEG-TS) or the init segment (fMP4). A master playlist's variants are read
// the same way: the size counts them all, the duration is the longest, and
// width and height are the largest RESOLUTION attribute (else the variants').
//
// Every URI is resolved inside the playlist's directory: absolute URLs,
// absolute paths and paths that climb out of the directory (with .. or
// through a symbolic link) are refused with ErrUnsupported; a missing file is
// ErrCorrupt.
func ProbeHLS(playlist string) (Info, error) {
	dir, name := filepath.Split(playlist)
	if dir == "" {
		dir = "."
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Info{}, err
	}
	defer root.Close()
	p := &hlsProbe{root: root, seen: make(map[string]bool)}
	info, err := p.playlist(filepath.ToSlash(name), false)
	if err != nil {
		return Info{}, err
	}
	info.Format = livehooks.FormatHLS
	info.Size = p.size
	return info, nil
}

// hlsProbe walks one playlist tree inside root.
type hlsProbe struct {
	root *os.Root
	seen map[string]bool // files already counted in size
	size int64
}

// count adds a file's size once.
func (p *hlsProbe) count(name string) error {
	if p.seen[name] {
		return nil
	}
	st, err := p.root.Stat(filepath.FromSlash(name))
	if err != nil {
		return p.openError(name, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%w: hls: %q is not a regular file", ErrUnsupported, name)
	}
	p.seen[name] = true
	p.size += st.Size()
	return nil
}

func (p *hlsProbe) openError(name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: hls: %q is missing", ErrCorrupt, name)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "escapes") {
		return fmt.Errorf("%w: hls: %q leads outside the playlist's directory", ErrUnsupported, name)
	}
	return fmt.Errorf("hls: %w", err)
}

// playlist reads the playlist name (a slash path inside root).
func (p *hlsProbe) playlist(name string, variant bool) (Info, error) {
	data, err := p.read(name, maxPlaylistSize)
	if err != nil {
		return Info{}, err
	}
	if !bytes.HasPrefix(bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), " \t\r\n"), []byte("#EXTM3U")) {
		return Info{}, fmt.Errorf("%w: hls: %q does not start with #EXTM3U", ErrCorrupt, name)
	}
	pl, kind, err := decodePlaylist(data)
	if err != nil {
		return Info{}, fmt.Errorf("%w: hls: %q: %v", ErrCorrupt, name, err)
	}
	switch kind {
	case m3u8.MEDIA:
		if mp, ok := pl.(*m3u8.MediaPlaylist); ok {
			return p.media(name, mp)
		}
	case m3u8.MASTER:
		if variant {
			return Info{}, fmt.Errorf("%w: hls: variant %q is a master playlist", ErrCorrupt, name)
		}
		if mp, ok := pl.(*m3u8.MasterPlaylist); ok {
			return p.master(name, mp)
		}
	}
	return Info{}, fmt.Errorf("%w: hls: %q is neither a media nor a master playlist", ErrCorrupt, name)
}

// decodePlaylist runs the m3u8 decoder, which is lenient (not strict) since
// recorders write imperfect playlists; a panic in it is a decoding failure.
func decodePlaylist(data []byte) (pl m3u8.Playlist, kind m3u8.ListType, err error) {
	defer func() {
		if r := recover(); r != nil {
			pl, kind, err = nil, 0, fmt.Errorf("decoder failure: %v", r)
		}
	}()
	return m3u8.DecodeFrom(bytes.NewReader(data), false)
}

// read returns the whole file name, refusing files over limit.
func (p *hlsProbe) read(name string, limit int64) ([]byte, error) {
	f, err := p.root.Open(filepath.FromSlash(name))
	if err != nil {
		return nil, p.openError(name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: hls: %q is not a regular file", ErrUnsupported, name)
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%w: hls: %q is %d bytes, over the %d-byte limit", ErrUnsupported, name, st.Size(), limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: hls: %q grows over the %d-byte limit", ErrUnsupported, name, limit)
	}
	if !p.seen[name] {
		p.seen[name] = true
		p.size += int64(len(data))
	}
	return data, nil
}

// resolve turns a URI found in the playlist base into a slash path inside
// root, refusing anything that is not a relative reference staying inside.
func resolve(base, uri string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(uri))
	if err != nil {
		return "", fmt.Errorf("%w: hls: URI %.80q: %v", ErrCorrupt, uri, err)
	}
	if u.Scheme != "" || u.Host != "" || u.Opaque != "" {
		return "", fmt.Errorf("%w: hls: URI %.80q is absolute; only files beside the playlist are read", ErrUnsupported, uri)
	}
	if u.Path == "" {
		return "", fmt.Errorf("%w: hls: empty URI", ErrCorrupt)
	}
	if strings.HasPrefix(u.Path, "/") {
		return "", fmt.Errorf("%w: hls: URI %.80q is an absolute path", ErrUnsupported, uri)
	}
	name := path.Join(path.Dir(base), u.Path)
	if !filepath.IsLocal(filepath.FromSlash(name)) || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%w: hls: URI %.80q leads outside the playlist's directory", ErrUnsupported, uri)
	}
	return name, nil
}

// maxSegmentSeconds bounds one EXTINF; longer is a broken playlist.
const maxSegmentSeconds = 7 * 24 * 3600

func (p *hlsProbe) media(name string, mp *m3u8.MediaPlaylist) (Info, error) {
	var (
		info    Info
		seconds float64
		probed  int
		picture bool
	)
	for _, seg := range mp.GetAllSegments() {
		if seg == nil {
			continue
		}
		d := seg.Duration
		if math.IsNaN(d) || d < 0 || d > maxSegmentSeconds {
			return Info{}, fmt.Errorf("%w: hls: %q: EXTINF duration %v", ErrCorrupt, name, d)
		}
		seconds += d
		if seconds >= maxSeconds {
			return Info{}, fmt.Errorf("%w: hls: %q: implausible total duration", ErrCorrupt, name)
		}

		file, err := resolve(name, seg.URI)
		if err != nil {
			return Info{}, err
		}
		if err := p.count(file); err != nil {
			return Info{}, err
		}
		var init string
		if seg.Map != nil && seg.Map.URI != "" {
			if init, err = resolve(name, seg.Map.URI); err != nil {
				return Info{}, err
			}
			if err := p.count(init); err != nil {
				return Info{}, err
			}
		}
		if !picture && probed < maxSegmentProbes {
			probed++
			res, err := p.segmentPicture(file, init)
			if err != nil {
				return Info{}, err
			}
			info.HasVideo = info.HasVideo || res.hasVideo
			if res.width > 0 {
				info.Width, info.Height, picture = res.width, res.height, true
			}
		}
	}
	info.Duration = time.Duration(math.Round(seconds * float64(time.Second)))
	return info, nil
}

// segmentPicture looks into a segment (MPEG-TS) or its init segment (fMP4)
// for the video's presence and size. Unreadable content is not an error: the
// playlist already gave the facts that matter most.
func (p *hlsProbe) segmentPicture(file, init string) (tsResult, error) {
	if init != "" {
		f, err := p.root.Open(filepath.FromSlash(init))
		if err != nil {
			return tsResult{}, p.openError(init, err)
		}
		defer f.Close()
		info, err := ProbeMP4(f)
		if err != nil {
			return tsResult{}, nil
		}
		return tsResult{hasVideo: info.HasVideo, width: info.Width, height: info.Height}, nil
	}
	f, err := p.root.Open(filepath.FromSlash(file))
	if err != nil {
		return tsResult{}, p.openError(file, err)
	}
	defer f.Close()
	return probeTS(bufio.NewReaderSize(f, 32<<10))
}

func (p *hlsProbe) master(name string, mp *m3u8.MasterPlaylist) (Info, error) {
	var info, probed Info
	for _, v := range mp.Variants {
		if v == nil || v.URI == "" {
			continue
		}
		if w, h, ok := parseResolution(v.Resolution); ok && w*h > info.Width*info.Height {
			info.Width, info.Height, info.HasVideo = w, h, true
		}
		file, err := resolve(name, v.URI)
		if err != nil {
			return Info{}, err
		}
		if p.seen[file] {
			continue
		}
		vi, err := p.playlist(file, true)
		if err != nil {
			return Info{}, err
		}
		info.Duration = max(info.Duration, vi.Duration)
		info.HasVideo = info.HasVideo || vi.HasVideo
		if vi.Width*vi.Height > probed.Width*probed.Height {
			probed.Width, probed.Height = vi.Width, vi.Height
		}
	}
	if info.Width == 0 {
		info.Width, info.Height = probed.Width, probed.Height
	}
	return info, nil
}

// parseResolution parses a RESOLUTION attribute, "1280x720".
func parseResolution(s string) (w, h int, ok bool) {
	ws, hs, found := strings.Cut(strings.ToLower(s), "x")
	if !found {
		return 0, 0, false
	}
	w, err1 := strconv.Atoi(ws)
	h, err2 := strconv.Atoi(hs)
	if err1 != nil || err2 != nil || w <= 0 || h <= 0 || w > maxDimension || h > maxDimension {
		return 0, 0, false
	}
	return w, h, true
}
