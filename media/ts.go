package media

import (
	"encoding/binary"
	"errors"
	"io"
)

// MPEG-TS constants (ISO/IEC 13818-1).
const (
	tsPacketSize = 188
	tsSync       = 0x47
	tsStreamH264 = 0x1b
	maxPESScan   = 64 << 10 // the SPS sits in the first NAL units of a PES
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

// tsResult is what a TS scan learns.
type tsResult struct {
	hasVideo      bool
	width, height int
}

// probeTS reads MPEG-TS packets from r (at most maxTSScan bytes): the PAT,
// the first program's PMT, and the first H.264 SPS of its video stream.
// Damaged data ends the scan with whatever was learnt; reading errors other
// than EOF are returned.
func probeTS(r io.Reader) (tsResult, error) {
	var (
		res     tsResult
		pkt     [tsPacketSize]byte
		pmtPID  = -1
		vidPID  = -1
		pes     []byte
		inPES   bool
		scanned int
	)
	findSPS := func() bool {
		if sps := annexBSPS(pes); sps != nil {
			if w, h, ok := spsSize(sps); ok {
				res.width, res.height = w, h
				return true
			}
		}
		return false
	}
	for scanned < maxTSScan {
		if _, err := io.ReadFull(r, pkt[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			return tsResult{}, err
		}
		scanned += tsPacketSize
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

		switch {
		case pid == 0 && pusi && pmtPID < 0:
			pmtPID = parsePAT(payload)
		case pid == pmtPID && pusi && vidPID < 0:
			vidPID, res.hasVideo = parsePMT(payload)
			if vidPID < 0 {
				return res, nil // no H.264 stream: no SPS to read
			}
		case pid == vidPID && vidPID >= 0:
			if pusi {
				if inPES && findSPS() {
					return res, nil
				}
				pes, inPES = pes[:0], false
				es, ok := pesPayload(payload)
				if !ok {
					continue
				}
				pes, inPES = append(pes, es...), true
			} else if inPES {
				pes = append(pes, payload...)
			}
			if len(pes) >= maxPESScan {
				if findSPS() {
					return res, nil
				}
				inPES = false
			}
		}
	}
	if inPES {
		findSPS()
	}
	return res, nil
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

// parsePMT returns the PID of the first H.264 stream (or -1) and whether
// the program has any video stream.
func parsePMT(payload []byte) (h264PID int, video bool) {
	h264PID = -1
	sec := psiSection(payload, 0x02)
	if len(sec) < 9 {
		return -1, false
	}
	infoLen := int(binary.BigEndian.Uint16(sec[7:]) & 0x0fff)
	if 9+infoLen > len(sec) {
		return -1, false
	}
	for e := sec[9+infoLen:]; len(e) >= 5; {
		streamType := e[0]
		pid := int(binary.BigEndian.Uint16(e[1:]) & 0x1fff)
		esLen := int(binary.BigEndian.Uint16(e[3:]) & 0x0fff)
		if tsVideoStream(streamType) {
			video = true
			if streamType == tsStreamH264 && h264PID < 0 {
				h264PID = pid
			}
		}
		if 5+esLen > len(e) {
			break
		}
		e = e[5+esLen:]
	}
	return h264PID, video
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
