package media

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/livehooks/livehooks"
)

// FLV tag types (video_file_format_spec_v10_1, E.4.1).
const (
	flvTagAudio  = 8
	flvTagVideo  = 9
	flvTagScript = 18
)

// flvScan accumulates what the tag walk learns.
type flvScan struct {
	mediaTags     int
	minTS, maxTS  uint32
	videoFrames   int
	width, height int // from the first parsable SPS
	meta          flvMeta
	metaSeen      bool
}

// ProbeFLV reads an FLV file of the given size: the 9-byte header, then the
// tags, stopping cleanly at a truncated tail (a recorder killed mid-write
// leaves one). Duration is the span of the audio and video timestamps
// (sequence headers and end-of-sequence markers excluded); when the file has
// media but no span, onMetaData's duration is used. Width and height come
// from the first AVC sequence header's SPS, else from onMetaData. A file
// without media tags (nginx-rtmp's tiny trailing files) is not an error: it
// has Duration 0 and HasVideo false.
func ProbeFLV(r io.ReaderAt, size int64) (Info, error) {
	w := newWindow(r, size)
	if size < 9 {
		return Info{}, fmt.Errorf("%w: flv: %d bytes is shorter than the header", ErrCorrupt, size)
	}
	h, err := w.at(0, 9)
	if err != nil {
		return Info{}, err
	}
	if string(h[:3]) != "FLV" {
		return Info{}, fmt.Errorf("%w: flv: no FLV signature", ErrCorrupt)
	}
	dataOffset := int64(binary.BigEndian.Uint32(h[5:9]))
	if dataOffset < 9 || dataOffset > size {
		return Info{}, fmt.Errorf("%w: flv: header size %d", ErrCorrupt, dataOffset)
	}

	var s flvScan
	// PreviousTagSize0 follows the header; tags follow it.
	for off := dataOffset + 4; off < size; {
		if size-off < 11 {
			break // truncated tag header
		}
		th, err := w.at(off, 11)
		if err != nil {
			return Info{}, err
		}
		tagType := th[0] & 0x1f
		filtered := th[0]&0x20 != 0
		dataSize := int64(th[1])<<16 | int64(th[2])<<8 | int64(th[3])
		ts := uint32(th[4])<<16 | uint32(th[5])<<8 | uint32(th[6]) | uint32(th[7])<<24
		body := off + 11
		if dataSize > size-body {
			break // truncated tag body
		}
		switch tagType {
		case flvTagAudio, flvTagVideo:
			if err := s.media(w, tagType, filtered, body, dataSize, ts); err != nil {
				return Info{}, err
			}
		case flvTagScript:
			if !s.metaSeen && !filtered && dataSize <= maxScriptSize {
				b, err := w.at(body, int(dataSize))
				if err != nil {
					return Info{}, err
				}
				if m, ok := parseOnMetaData(b); ok {
					s.meta, s.metaSeen = m, true
				}
			}
		default:
			return Info{}, fmt.Errorf("%w: flv: tag type %d at offset %d", ErrCorrupt, tagType, off)
		}
		off = body + dataSize + 4 // skip PreviousTagSize
	}

	info := Info{Format: livehooks.FormatFLV, Size: size}
	switch {
	case s.mediaTags > 1 && s.maxTS > s.minTS:
		info.Duration = time.Duration(s.maxTS-s.minTS) * time.Millisecond
	case s.mediaTags > 0 && s.metaSeen:
		info.Duration = s.meta.duration
	}
	if s.videoFrames > 0 {
		info.HasVideo = true
		info.Width, info.Height = s.width, s.height
		if info.Width == 0 && s.meta.width > 0 && s.meta.height > 0 {
			info.Width, info.Height = s.meta.width, s.meta.height
		}
	}
	return info, nil
}

// media records one audio or video tag.
func (s *flvScan) media(w *window, tagType byte, filtered bool, body, dataSize int64, ts uint32) error {
	if dataSize == 0 {
		return nil
	}
	n := min(dataSize, 16)
	b, err := w.at(body, int(n))
	if err != nil {
		return err
	}
	if !filtered {
		if tagType == flvTagAudio {
			// AAC sequence header: SoundFormat 10, AACPacketType 0.
			if b[0]>>4 == 10 && len(b) > 1 && b[1] == 0 {
				return nil
			}
		} else {
			frame, config := flvVideoKind(b)
			if config != nil && s.width == 0 {
				if err := s.sequenceHeader(w, body, dataSize, config); err != nil {
					return err
				}
			}
			if !frame {
				return nil
			}
			s.videoFrames++
		}
	} else if tagType == flvTagVideo {
		s.videoFrames++ // encrypted: a frame we cannot look into
	}
	if s.mediaTags == 0 || ts < s.minTS {
		s.minTS = ts
	}
	if s.mediaTags == 0 || ts > s.maxTS {
		s.maxTS = ts
	}
	s.mediaTags++
	return nil
}

// flvConfig locates the AVC decoder configuration record in a video tag body:
// it starts skip bytes into the body.
type flvConfig struct{ skip int64 }

// flvVideoKind classifies a video tag from its first bytes: frame reports a
// coded picture, config an AVC sequence header. Both legacy FLV (codec id 7)
// and Enhanced RTMP (FourCC "avc1") are understood; other codecs' frames count
// as frames, their configurations are not read.
func flvVideoKind(b []byte) (frame bool, config *flvConfig) {
	if b[0]&0x80 != 0 { // Enhanced RTMP: IsExHeader | FrameType(3) | PacketType(4)
		frameType, packetType := (b[0]>>4)&7, b[0]&0x0f
		if frameType == 5 { // command frame
			return false, nil
		}
		switch packetType {
		case 0: // SequenceStart
			if len(b) >= 5 && string(b[1:5]) == "avc1" {
				return false, &flvConfig{skip: 5}
			}
			return false, nil
		case 1, 3: // CodedFrames, CodedFramesX
			return true, nil
		}
		return false, nil // SequenceEnd, Metadata, MPEG2TSSequenceStart, reserved
	}
	frameType, codec := b[0]>>4, b[0]&0x0f
	if frameType == 5 { // video info/command frame
		return false, nil
	}
	if codec == 7 || codec == 12 { // AVC, and HEVC as Chinese CDNs extend FLV
		if len(b) < 2 {
			return false, nil
		}
		switch b[1] {
		case 0: // sequence header
			if codec == 7 {
				return false, &flvConfig{skip: 5}
			}
			return false, nil
		case 1:
			return true, nil
		}
		return false, nil // end of sequence
	}
	return true, nil
}

// sequenceHeader reads the SPS of an AVC sequence header tag.
func (s *flvScan) sequenceHeader(w *window, body, dataSize int64, c *flvConfig) error {
	n := dataSize - c.skip
	if n <= 0 || n > maxConfigSize {
		return nil
	}
	rec, err := w.at(body+c.skip, int(n))
	if err != nil {
		return err
	}
	if sps := avcConfigSPS(rec); sps != nil {
		if width, height, ok := spsSize(sps); ok {
			s.width, s.height = width, height
		}
	}
	return nil
}

// flvMeta is what livehooks reads from onMetaData.
type flvMeta struct {
	duration      time.Duration
	width, height int
}

// AMF0 type markers (amf0-file-format-specification, 2.1).
const (
	amfNumber      = 0x00
	amfBoolean     = 0x01
	amfString      = 0x02
	amfObject      = 0x03
	amfNull        = 0x05
	amfUndefined   = 0x06
	amfReference   = 0x07
	amfECMAArray   = 0x08
	amfObjectEnd   = 0x09
	amfStrictArray = 0x0a
	amfDate        = 0x0b
	amfLongString  = 0x0c
)

// parseOnMetaData decodes an FLV script tag body "onMetaData" {…} (optionally
// preceded by "@setDataFrame") and returns its duration, width and height.
// Anything it does not understand makes it give up: metadata is a fallback.
func parseOnMetaData(b []byte) (flvMeta, bool) {
	d := amfDecoder{b: b}
	name, ok := d.string()
	if ok && name == "@setDataFrame" {
		name, ok = d.string()
	}
	if !ok || name != "onMetaData" || d.pos >= len(d.b) {
		return flvMeta{}, false
	}
	var m flvMeta
	marker := d.b[d.pos]
	d.pos++
	switch marker {
	case amfECMAArray:
		if !d.skip(4) { // approximate count; the end marker is authoritative
			return flvMeta{}, false
		}
	case amfObject:
	default:
		return flvMeta{}, false
	}
	for {
		key, ok := d.key()
		if !ok {
			return m, m != flvMeta{} // tolerate a missing end marker
		}
		if key == "" {
			if d.pos < len(d.b) && d.b[d.pos] == amfObjectEnd {
				return m, true
			}
			return m, m != flvMeta{}
		}
		if d.pos < len(d.b) && d.b[d.pos] == amfNumber && len(d.b)-d.pos >= 9 {
			v := math.Float64frombits(binary.BigEndian.Uint64(d.b[d.pos+1:]))
			switch key {
			case "duration":
				if v > 0 && v < maxSeconds {
					m.duration = time.Duration(v * float64(time.Second))
				}
			case "width":
				if v >= 1 && v <= maxDimension {
					m.width = int(v)
				}
			case "height":
				if v >= 1 && v <= maxDimension {
					m.height = int(v)
				}
			}
		}
		if !d.value(0) {
			return m, m != flvMeta{}
		}
	}
}

// amfDecoder walks AMF0 values in a byte slice; every method reports false
// when the data runs out or is malformed.
type amfDecoder struct {
	b   []byte
	pos int
}

// maxAMFDepth bounds nesting so crafted metadata cannot exhaust the stack.
const maxAMFDepth = 8

func (d *amfDecoder) skip(n int) bool {
	if n < 0 || len(d.b)-d.pos < n {
		return false
	}
	d.pos += n
	return true
}

// key reads a UTF-8 property name (u16 length, no marker).
func (d *amfDecoder) key() (string, bool) {
	if len(d.b)-d.pos < 2 {
		return "", false
	}
	n := int(binary.BigEndian.Uint16(d.b[d.pos:]))
	d.pos += 2
	if len(d.b)-d.pos < n {
		return "", false
	}
	s := string(d.b[d.pos : d.pos+n])
	d.pos += n
	return s, true
}

// string reads a string value (marker 0x02).
func (d *amfDecoder) string() (string, bool) {
	if d.pos >= len(d.b) || d.b[d.pos] != amfString {
		return "", false
	}
	d.pos++
	return d.key()
}

// value skips one value of any type.
func (d *amfDecoder) value(depth int) bool {
	if d.pos >= len(d.b) || depth > maxAMFDepth {
		return false
	}
	marker := d.b[d.pos]
	d.pos++
	switch marker {
	case amfNumber:
		return d.skip(8)
	case amfBoolean:
		return d.skip(1)
	case amfString:
		_, ok := d.key()
		return ok
	case amfNull, amfUndefined:
		return true
	case amfReference:
		return d.skip(2)
	case amfDate:
		return d.skip(10)
	case amfLongString:
		if len(d.b)-d.pos < 4 {
			return false
		}
		n := binary.BigEndian.Uint32(d.b[d.pos:])
		d.pos += 4
		return uint64(n) <= uint64(len(d.b)-d.pos) && d.skip(int(n))
	case amfECMAArray, amfObject:
		if marker == amfECMAArray && !d.skip(4) {
			return false
		}
		for {
			key, ok := d.key()
			if !ok {
				return false
			}
			if key == "" && d.pos < len(d.b) && d.b[d.pos] == amfObjectEnd {
				d.pos++
				return true
			}
			if !d.value(depth + 1) {
				return false
			}
		}
	case amfStrictArray:
		if len(d.b)-d.pos < 4 {
			return false
		}
		n := binary.BigEndian.Uint32(d.b[d.pos:])
		d.pos += 4
		// Every value takes at least one byte, so the data bounds the loop.
		for i := uint32(0); i < n; i++ {
			if !d.value(depth + 1) {
				return false
			}
		}
		return true
	}
	return false
}
