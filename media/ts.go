package media

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/livehooks/livehooks"
)

// MPEG-TS constants (ISO/IEC 13818-1).
const (
	tsPacketSize = 188
	tsSync       = 0x47
	tsStreamH264 = 0x1b
	maxPESScan   = 64 << 10 // the SPS sits in the first NAL units of a PES
	tsTailScan   = 1 << 20  // bytes at the end of a TS file searched for the last timestamps
	ptsWrap      = 1 << 33  // PTS are 33-bit counts of a 90 kHz clock
	ptsClock     = 90000
)

// tsVideoStream reports whether stream_type is a video coding.
func tsVideoStream(t byte) bool {
	switch t {
	case 0x01, 0x02, 0x10, 0x1b, 0x24, 0x42, 0xd1, 0xea:
		// MPEG-1, MPEG-2, MPEG-4 Part 2, H.264, H.265, AVS, Dirac, VC-1
		return true
	}
	return false
}

// ProbeTS reads an MPEG-TS file of the given size, such as a segment that
// MediaMTX records with recordFormat mpegts. The picture size comes from the
// first H.264 SPS (read from the first maxTSScan bytes), the duration from the
// presentation timestamps of the video stream (or, without video, of the
// first stream): the span from the first to the last, plus one frame, as
// ffprobe counts it; the last are read from the file's last tsTailScan bytes.
// The format is reported as livehooks.FormatHLS, the name Huawei gives to
// recordings made of TS segments.
func ProbeTS(r io.ReaderAt, size int64) (Info, error) {
	head := make([]byte, 1)
	if size < tsPacketSize {
		return Info{}, fmt.Errorf("%w: ts: %d bytes, less than one packet", ErrCorrupt, size)
	}
	if _, err := r.ReadAt(head, 0); err != nil {
		return Info{}, err
	}
	if head[0] != tsSync {
		return Info{}, fmt.Errorf("%w: ts: no sync byte at the start", ErrCorrupt)
	}
	s := newTSScan()
	if err := s.scan(bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 32<<10), maxTSScan, true); err != nil {
		return Info{}, err
	}
	if s.pmtPID < 0 || s.timePID < 0 {
		return Info{}, fmt.Errorf("%w: ts: no program with an elementary stream in the first %d bytes", ErrCorrupt, min(size, maxTSScan))
	}
	info := Info{Format: livehooks.FormatHLS, Size: size, Width: s.res.width, Height: s.res.height, HasVideo: s.res.hasVideo}
	if !s.firstOK {
		return info, nil
	}
	// The tail is scanned from a packet boundary: recorders write whole
	// packets from the start of the file.
	off := max(0, size-tsTailScan)
	off -= off % tsPacketSize
	tail := newTSScan()
	tail.pmtPID, tail.timePID = s.pmtPID, s.timePID
	if err := tail.scan(bufio.NewReaderSize(io.NewSectionReader(r, off, size-off), 32<<10), tsTailScan+tsPacketSize, false); err != nil {
		return Info{}, err
	}
	// Timestamps as offsets from the first, the 33-bit clock may wrap in
	// between; one before the first (an offset over half the clock's range)
	// belongs to a broken file and is left out.
	var rel []uint64
	for _, pts := range tail.pts {
		if d := (pts - s.first + ptsWrap) % ptsWrap; d < ptsWrap/2 {
			rel = append(rel, d)
		}
	}
	if len(rel) == 0 {
		return info, nil
	}
	info.Duration = time.Duration(slices.Max(rel)+frameTicks(rel)) * time.Second / ptsClock
	return info, nil
}

// frameTicks estimates one frame's duration as the smallest gap between the
// distinct timestamps seen (frames may be stored out of presentation order).
// It sorts pts.
func frameTicks(pts []uint64) uint64 {
	slices.Sort(pts)
	var gap uint64
	for i := 1; i < len(pts); i++ {
		if d := pts[i] - pts[i-1]; d > 0 && (gap == 0 || d < gap) {
			gap = d
		}
	}
	if gap > ptsClock { // one frame over a second: not a frame rate
		return 0
	}
	return gap
}

// tsResult is what a TS scan learns of the picture.
type tsResult struct {
	hasVideo      bool
	width, height int
}

// probeTS reads MPEG-TS packets from r (at most maxTSScan bytes): the PAT,
// the first program's PMT, and the first H.264 SPS of its video stream.
// Damaged data ends the scan with whatever was learnt; reading errors other
// than EOF are returned.
func probeTS(r io.Reader) (tsResult, error) {
	s := newTSScan()
	if err := s.scan(r, maxTSScan, false); err != nil {
		return tsResult{}, err
	}
	return s.res, nil
}

// tsScan walks TS packets: the PAT, the first program's PMT, the first SPS
// of its H.264 stream, and the presentation timestamps of its timing stream
// (the H.264 one, else the first).
type tsScan struct {
	res     tsResult
	pmtPID  int
	vidPID  int // the H.264 stream, -1 when none (yet)
	timePID int // the stream whose timestamps give the duration
	pes     []byte
	inPES   bool
	spsDone bool
	first   uint64 // the timing stream's first PTS, when firstOK
	firstOK bool
	pts     []uint64 // its timestamps seen, when collecting
}

func newTSScan() *tsScan { return &tsScan{pmtPID: -1, vidPID: -1, timePID: -1} }

// maxTailPTS bounds the timestamps a tail scan keeps.
const maxTailPTS = 4096

// scan reads packets from r until limit bytes, the end, lost sync, or (for a
// head scan, which stops as soon as it knows the picture and the first
// timestamp when wantFirst, or the picture alone otherwise) enough is known.
// A tail scan (pmtPID and timePID set by the caller) collects timestamps.
func (s *tsScan) scan(r io.Reader, limit int, wantFirst bool) error {
	var pkt [tsPacketSize]byte
	collect := s.timePID >= 0
	for scanned := 0; scanned < limit; scanned += tsPacketSize {
		if _, err := io.ReadFull(r, pkt[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			return err
		}
		if pkt[0] != tsSync {
			break // lost sync: not worth resynchronising for a probe
		}
		pusi := pkt[1]&0x40 != 0
		pid := int(pkt[1]&0x1f)<<8 | int(pkt[2])
		afc := pkt[3] >> 4 & 3
		if pkt[3]>>6 != 0 || afc&1 == 0 { // scrambled, or no payload
			continue
		}
		p := 4
		if afc&2 != 0 {
			p += 1 + int(pkt[4])
		}
		if p >= tsPacketSize {
			continue
		}
		payload := pkt[p:]

		if collect {
			if pid == s.timePID && pusi && len(s.pts) < maxTailPTS {
				if pts, ok := pesPTS(payload); ok {
					s.pts = append(s.pts, pts)
				}
			}
			continue
		}
		switch {
		case pid == 0 && pusi && s.pmtPID < 0:
			s.pmtPID = parsePAT(payload)
		case pid == s.pmtPID && pusi && s.timePID < 0:
			pm := parsePMT(payload)
			s.vidPID, s.timePID, s.res.hasVideo = pm.h264PID, pm.timePID, pm.video
			if s.vidPID < 0 {
				s.spsDone = true // no H.264 stream: no SPS to read
			}
		case pid == s.timePID && pusi && !s.firstOK:
			if pts, ok := pesPTS(payload); ok {
				s.first, s.firstOK = pts, true
			}
		}
		if pid == s.vidPID && s.vidPID >= 0 && !s.spsDone {
			s.video(pusi, payload)
		}
		if s.spsDone && (s.firstOK || !wantFirst) && s.timePID >= 0 {
			return nil
		}
	}
	if s.inPES && !s.spsDone {
		s.findSPS()
	}
	return nil
}

// video gathers the H.264 stream's PES packets until one holds an SPS.
func (s *tsScan) video(pusi bool, payload []byte) {
	if pusi {
		if s.inPES && s.findSPS() {
			return
		}
		s.pes, s.inPES = s.pes[:0], false
		es, ok := pesPayload(payload)
		if !ok {
			return
		}
		s.pes, s.inPES = append(s.pes, es...), true
	} else if s.inPES {
		s.pes = append(s.pes, payload...)
	}
	if len(s.pes) >= maxPESScan {
		s.findSPS()
		s.inPES = false
	}
}

func (s *tsScan) findSPS() bool {
	if sps := annexBSPS(s.pes); sps != nil {
		if w, h, ok := spsSize(sps); ok {
			s.res.width, s.res.height, s.spsDone = w, h, true
			return true
		}
	}
	return false
}

// psiSection returns a PSI section (after the pointer field) of the given
// table id, cut to its section_length and without its CRC.
func psiSection(payload []byte, tableID byte) []byte {
	if len(payload) < 1 {
		return nil
	}
	p := 1 + int(payload[0]) // pointer_field
	if p+3 > len(payload) || payload[p] != tableID {
		return nil
	}
	n := int(binary.BigEndian.Uint16(payload[p+1:]) & 0x0fff)
	sec := payload[p+3:]
	if n < 4 || n > len(sec) {
		// A section continued in the next packet: read what this one holds.
		if n < 4 {
			return nil
		}
		return sec
	}
	return sec[:n-4]
}

// parsePAT returns the PMT PID of the first program, or -1.
func parsePAT(payload []byte) int {
	sec := psiSection(payload, 0x00)
	if len(sec) < 5 {
		return -1
	}
	for e := sec[5:]; len(e) >= 4; e = e[4:] {
		if binary.BigEndian.Uint16(e) != 0 { // program 0 is the network PID
			return int(binary.BigEndian.Uint16(e[2:]) & 0x1fff)
		}
	}
	return -1
}

// pmtInfo is what a PMT says of its program's streams.
type pmtInfo struct {
	h264PID int  // the first H.264 stream, or -1
	timePID int  // the H.264 stream, else the first stream, or -1
	video   bool // whether there is any video stream
}

func parsePMT(payload []byte) pmtInfo {
	pm := pmtInfo{h264PID: -1, timePID: -1}
	sec := psiSection(payload, 0x02)
	if len(sec) < 9 {
		return pm
	}
	infoLen := int(binary.BigEndian.Uint16(sec[7:]) & 0x0fff)
	if 9+infoLen > len(sec) {
		return pm
	}
	for e := sec[9+infoLen:]; len(e) >= 5; {
		streamType := e[0]
		pid := int(binary.BigEndian.Uint16(e[1:]) & 0x1fff)
		esLen := int(binary.BigEndian.Uint16(e[3:]) & 0x0fff)
		if pm.timePID < 0 {
			pm.timePID = pid
		}
		if tsVideoStream(streamType) {
			pm.video = true
			if streamType == tsStreamH264 && pm.h264PID < 0 {
				pm.h264PID, pm.timePID = pid, pid
			}
		}
		if 5+esLen > len(e) {
			break
		}
		e = e[5+esLen:]
	}
	return pm
}

// pesPayload returns the elementary stream bytes of the first packet of a
// PES packet.
func pesPayload(b []byte) ([]byte, bool) {
	if len(b) < 9 || b[0] != 0 || b[1] != 0 || b[2] != 1 {
		return nil, false
	}
	p := 9 + int(b[8])
	if p > len(b) {
		return nil, false
	}
	return b[p:], true
}

// pesPTS returns the presentation timestamp in the header of a PES packet's
// first TS packet.
func pesPTS(b []byte) (uint64, bool) {
	if len(b) < 14 || b[0] != 0 || b[1] != 0 || b[2] != 1 || b[7]&0x80 == 0 || b[8] < 5 {
		return 0, false
	}
	t := b[9:14]
	if t[0]&1 == 0 || t[2]&1 == 0 || t[4]&1 == 0 { // marker bits
		return 0, false
	}
	return uint64(t[0]>>1&7)<<30 | uint64(t[1])<<22 | uint64(t[2]>>1)<<15 | uint64(t[3])<<7 | uint64(t[4]>>1), true
}
