package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strings"
	"time"

	mp4 "github.com/abema/go-mp4"

	"github.com/livehooks/livehooks"
)

// mp4Track is what the walk learns about one trak.
type mp4Track struct {
	id              uint32
	timescale       uint32
	duration        uint64 // mdhd, in timescale ticks
	fragments       uint64 // summed trun sample durations, in timescale ticks
	handler         string
	video           bool
	tkhdW, tkhdH    int
	entryW, entryH  int // from the visual sample entry
	defaultDuration uint32
}

// mp4Scan accumulates the walk's findings.
type mp4Scan struct {
	size           uint64
	moov           bool
	mvhdTimescale  uint32
	mvhdDuration   uint64
	mehdDuration   uint64
	tracks         []*mp4Track
	cur            *mp4Track // the trak being walked
	traf           *mp4Track // the track of the traf being walked
	trafDefault    uint32    // tfhd default_sample_duration, 0 when absent
	sawTrun        bool
	fragmentsShort bool // a trun referred to an unknown track
}

// Box types the probe reads, by path from the file's root.
var (
	mp4Expand = map[string]bool{
		"moov": true, "moov/trak": true, "moov/trak/mdia": true, "moov/trak/mdia/minf": true,
		"moov/trak/mdia/minf/stbl": true, "moov/trak/mdia/minf/stbl/stsd": true,
		"moov/mvex": true, "moof": true, "moof/traf": true,
	}
	// visualEntries are the sample entry types decoded as VisualSampleEntry.
	visualEntries = map[string]bool{
		"avc1": true, "avc3": true, "hvc1": true, "hev1": true, "av01": true,
		"vp08": true, "vp09": true, "mp4v": true, "encv": true,
	}
)

// ProbeMP4 reads an MP4 (ISO BMFF or QuickTime) file. Duration is the movie
// header's, else the longest track's; in a fragmented file it is the longest
// track's sum of trun sample durations. Width and height are the video
// track's sample entry dimensions (the coded size, as ffprobe reports it),
// else its track header's.
func ProbeMP4(r io.ReadSeeker) (info Info, err error) {
	size, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return Info{}, err
	}
	s := &mp4Scan{size: uint64(size)}
	// go-mp4 decodes boxes by reflection; a bug there on crafted input must
	// not take the server down.
	defer func() {
		if p := recover(); p != nil {
			info, err = Info{}, fmt.Errorf("%w: mp4: decoder failure: %v", ErrCorrupt, p)
		}
	}()
	if _, err := mp4.ReadBoxStructure(r, s.box); err != nil {
		if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrUnsupported) {
			return Info{}, err
		}
		return Info{}, fmt.Errorf("%w: mp4: %v", ErrCorrupt, err)
	}
	if !s.moov {
		return Info{}, fmt.Errorf("%w: mp4: no moov box", ErrCorrupt)
	}
	info = Info{Format: livehooks.FormatMP4, Size: size}
	if info.Duration, err = s.duration(); err != nil {
		return Info{}, err
	}
	for _, t := range s.tracks {
		if !t.video {
			continue
		}
		info.HasVideo = true
		w, h := t.entryW, t.entryH
		if w == 0 || h == 0 {
			w, h = t.tkhdW, t.tkhdH
		}
		if w > 0 && h > 0 {
			info.Width, info.Height = w, h
			break
		}
	}
	return info, nil
}

func (s *mp4Scan) duration() (time.Duration, error) {
	check := func(d time.Duration, ok bool) (time.Duration, error) {
		if !ok {
			return 0, fmt.Errorf("%w: mp4: implausible duration", ErrCorrupt)
		}
		return d, nil
	}
	longest := func(withFragments bool) (time.Duration, error) {
		var best time.Duration
		for _, t := range s.tracks {
			if t.timescale == 0 {
				continue
			}
			ticks := t.duration
			if withFragments {
				var carry uint64
				ticks, carry = bits.Add64(ticks, t.fragments, 0)
				if carry != 0 {
					return 0, fmt.Errorf("%w: mp4: implausible duration", ErrCorrupt)
				}
			}
			d, err := check(ticksDuration(ticks, t.timescale))
			if err != nil {
				return 0, err
			}
			best = max(best, d)
		}
		return best, nil
	}
	switch {
	case s.sawTrun && !s.fragmentsShort:
		return longest(true)
	case s.mehdDuration > 0 && s.mvhdTimescale > 0:
		return check(ticksDuration(s.mehdDuration, s.mvhdTimescale))
	case s.mvhdDuration > 0 && s.mvhdTimescale > 0:
		return check(ticksDuration(s.mvhdDuration, s.mvhdTimescale))
	}
	return longest(false)
}

func boxPath(p mp4.BoxPath) string {
	var b strings.Builder
	for i, t := range p {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(t.String())
	}
	return b.String()
}

// box is the go-mp4 walk handler: it checks each box fits in the file,
// expands the containers on the way to what it reads, and reads those.
func (s *mp4Scan) box(h *mp4.ReadHandle) (any, error) {
	bi := h.BoxInfo
	path := boxPath(h.Path)
	if bi.Size < bi.HeaderSize {
		return nil, fmt.Errorf("%w: mp4: box %s at offset %d is smaller than its header", ErrCorrupt, path, bi.Offset)
	}
	if bi.Offset > s.size || bi.Size > s.size-bi.Offset {
		if len(h.Path) == 1 && path != "moov" {
			// A truncated tail (a recorder killed mid-write): an mdat, or a
			// whole last fragment, whose samples are not counted.
			return nil, nil
		}
		return nil, fmt.Errorf("%w: mp4: box %s at offset %d overruns the file", ErrCorrupt, path, bi.Offset)
	}
	if mp4Expand[path] {
		switch path {
		case "moov":
			if s.moov {
				return nil, fmt.Errorf("%w: mp4: two moov boxes", ErrCorrupt)
			}
			s.moov = true
		case "moov/trak":
			s.cur = &mp4Track{}
			s.tracks = append(s.tracks, s.cur)
			defer func() { s.cur = nil }()
		case "moof/traf":
			s.traf, s.trafDefault = nil, 0
			defer func() { s.traf = nil }()
		}
		_, err := h.Expand()
		return nil, err
	}

	parent, name := path, path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		parent, name = path[:i], path[i+1:]
	}
	switch {
	case path == "moov/mvhd":
		box, err := s.read(h)
		if err != nil {
			return nil, err
		}
		if m, ok := box.(*mp4.Mvhd); ok {
			s.mvhdTimescale = m.Timescale
			s.mvhdDuration = knownDuration(m.GetDuration(), m.GetVersion())
		}
	case path == "moov/mvex/mehd":
		box, err := s.read(h)
		if err != nil {
			return nil, err
		}
		if m, ok := box.(*mp4.Mehd); ok {
			if m.GetVersion() == 0 {
				s.mehdDuration = uint64(m.FragmentDurationV0)
			} else {
				s.mehdDuration = m.FragmentDurationV1
			}
		}
	case path == "moov/mvex/trex":
		box, err := s.read(h)
		if err != nil {
			return nil, err
		}
		// Tracks precede mvex in every writer seen; a trex for a track not
		// yet seen creates it.
		if m, ok := box.(*mp4.Trex); ok {
			s.track(m.TrackID).defaultDuration = m.DefaultSampleDuration
		}
	case s.cur != nil && path == "moov/trak/tkhd":
		box, err := s.read(h)
		if err != nil {
			return nil, err
		}
		if m, ok := box.(*mp4.Tkhd); ok {
			if t := s.existing(m.TrackID); t != nil && t != s.cur {
				return nil, fmt.Errorf("%w: mp4: two tracks with id %d", ErrCorrupt, m.TrackID)
			}
			s.cur.id = m.TrackID
			s.cur.tkhdW, s.cur.tkhdH = int(m.GetWidthInt()), int(m.GetHeightInt())
		}
	case s.cur != nil && path == "moov/trak/mdia/mdhd":
		box, err := s.read(h)
		if err != nil {
			return nil, err
		}
		if m, ok := box.(*mp4.Mdhd); ok {
			s.cur.timescale = m.Timescale
			s.cur.duration = knownDuration(m.GetDuration(), m.GetVersion())
		}
	case s.cur != nil && path == "moov/trak/mdia/hdlr":
		box, err := s.read(h)
		if err != nil {
			return nil, err
		}
		if m, ok := box.(*mp4.Hdlr); ok {
			s.cur.handler = string(m.HandlerType[:])
			if s.cur.handler == "vide" {
				s.cur.video = true
			}
		}
	case s.cur != nil && parent == "moov/trak/mdia/minf/stbl/stsd" && visualEntries[name]:
		box, err := s.read(h)
		if err != nil {
			return nil, err
		}
		if m, ok := box.(*mp4.VisualSampleEntry); ok {
			s.cur.video = true
			if s.cur.entryW == 0 {
				s.cur.entryW, s.cur.entryH = int(m.Width), int(m.Height)
			}
		}
	case path == "moof/traf/tfhd":
		box, err := s.read(h)
		if err != nil {
			return nil, err
		}
		if m, ok := box.(*mp4.Tfhd); ok {
			s.traf = s.existing(m.TrackID)
			if m.CheckFlag(mp4.TfhdDefaultSampleDurationPresent) {
				s.trafDefault = m.DefaultSampleDuration
			}
		}
	case path == "moof/traf/trun":
		return nil, s.trun(h)
	}
	return nil, nil
}

// read decodes the payload of a small box.
func (s *mp4Scan) read(h *mp4.ReadHandle) (mp4.IBox, error) {
	if h.BoxInfo.Size-h.BoxInfo.HeaderSize > maxBoxRead {
		return nil, fmt.Errorf("%w: mp4: %s box of %d bytes", ErrCorrupt, h.BoxInfo.Type, h.BoxInfo.Size)
	}
	if !h.BoxInfo.IsSupportedType() {
		return nil, nil
	}
	box, _, err := h.ReadPayload()
	if err != nil {
		return nil, fmt.Errorf("%w: mp4: %s box at offset %d: %v", ErrCorrupt, h.BoxInfo.Type, h.BoxInfo.Offset, err)
	}
	return box, nil
}

// knownDuration maps the all-ones "duration unknown" value to 0.
func knownDuration(d uint64, version uint8) uint64 {
	if (version == 0 && d == 0xffffffff) || d == ^uint64(0) {
		return 0
	}
	return d
}

func (s *mp4Scan) existing(id uint32) *mp4Track {
	for _, t := range s.tracks {
		if t.id == id {
			return t
		}
	}
	return nil
}

func (s *mp4Scan) track(id uint32) *mp4Track {
	if t := s.existing(id); t != nil {
		return t
	}
	t := &mp4Track{id: id}
	s.tracks = append(s.tracks, t)
	return t
}

// Trun flags (ISO/IEC 14496-12 8.8.8.1).
const (
	trunDataOffset       = 0x000001
	trunFirstSampleFlags = 0x000004
	trunSampleDuration   = 0x000100
	trunSampleFields     = 0x000f00 // duration, size, flags, composition offset
)

// trun adds a track run's sample durations to its track. It is decoded by
// hand: go-mp4 allocates one entry per sample_count even when the entries
// are empty, which a crafted count turns into gigabytes.
func (s *mp4Scan) trun(h *mp4.ReadHandle) error {
	s.sawTrun = true
	t := s.traf
	if t == nil {
		s.fragmentsShort = true
		return nil
	}
	n := h.BoxInfo.Size - h.BoxInfo.HeaderSize
	if n > maxTrunSize {
		return fmt.Errorf("%w: mp4: trun box of %d bytes", ErrUnsupported, n)
	}
	var buf bytes.Buffer
	buf.Grow(int(n))
	if _, err := h.ReadData(&buf); err != nil {
		return fmt.Errorf("%w: mp4: trun: %v", ErrCorrupt, err)
	}
	b := buf.Bytes()
	if len(b) < 8 {
		return fmt.Errorf("%w: mp4: trun of %d bytes", ErrCorrupt, len(b))
	}
	flags := binary.BigEndian.Uint32(b) & 0xffffff
	count := uint64(binary.BigEndian.Uint32(b[4:]))
	p := 8
	if flags&trunDataOffset != 0 {
		p += 4
	}
	if flags&trunFirstSampleFlags != 0 {
		p += 4
	}
	entry := 4 * bits.OnesCount32(flags&trunSampleFields)
	if p > len(b) || count*uint64(entry) > uint64(len(b)-p) {
		return fmt.Errorf("%w: mp4: trun of %d samples does not fit its box", ErrCorrupt, count)
	}
	var sum uint64
	if flags&trunSampleDuration != 0 {
		for i := uint64(0); i < count; i++ {
			sum += uint64(binary.BigEndian.Uint32(b[p:]))
			p += entry
		}
	} else {
		d := t.defaultDuration
		if s.trafDefault != 0 {
			d = s.trafDefault
		}
		sum = count * uint64(d) // both < 2^32: no overflow
	}
	var carry uint64
	if t.fragments, carry = bits.Add64(t.fragments, sum, 0); carry != 0 {
		return fmt.Errorf("%w: mp4: implausible fragment durations", ErrCorrupt)
	}
	return nil
}
