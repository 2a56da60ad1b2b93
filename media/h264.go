package media

import (
	"encoding/binary"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// maxDimension bounds plausible picture sizes; a crafted SPS can encode
// anything up to 2^32 macroblocks.
const maxDimension = 1 << 15

// spsSize returns the picture size coded in an H.264 SPS NAL unit (with its
// one-byte NAL header), cropping applied.
func spsSize(nalu []byte) (width, height int, ok bool) {
	if len(nalu) == 0 || len(nalu) > maxConfigSize {
		return 0, 0, false
	}
	var sps h264.SPS
	if err := sps.Unmarshal(nalu); err != nil {
		return 0, 0, false
	}
	width, height = sps.Width(), sps.Height()
	if width <= 0 || height <= 0 || width > maxDimension || height > maxDimension {
		return 0, 0, false
	}
	return width, height, true
}

// avcConfigSPS returns the first SPS of an AVCDecoderConfigurationRecord
// (ISO/IEC 14496-15 5.3.3.1), as carried by an FLV AVC sequence header.
func avcConfigSPS(rec []byte) []byte {
	// configurationVersion, profile, compatibility, level, lengthSizeMinusOne, numOfSPS
	if len(rec) < 6 || rec[0] != 1 || rec[5]&0x1f == 0 {
		return nil
	}
	p := rec[6:]
	if len(p) < 2 {
		return nil
	}
	n := int(binary.BigEndian.Uint16(p))
	if n == 0 || len(p) < 2+n {
		return nil
	}
	return p[2 : 2+n]
}

// annexBSPS returns the first SPS NAL unit in an Annex B byte stream (NAL
// units after 00 00 01 start codes), or nil. The SPS must be followed by
// another start code or the end of buf, so a caller passing a whole PES
// payload gets it complete.
func annexBSPS(buf []byte) []byte {
	for i := 0; i+3 < len(buf); i++ {
		if buf[i] != 0 || buf[i+1] != 0 || buf[i+2] != 1 {
			continue
		}
		start := i + 3
		if h264.NALUType(buf[start]&0x1f) != h264.NALUTypeSPS {
			continue
		}
		end := len(buf)
		for j := start + 1; j+2 < len(buf); j++ {
			if buf[j] == 0 && buf[j+1] == 0 && (buf[j+2] == 1 || buf[j+2] == 0) {
				end = j
				break
			}
		}
		return buf[start:end]
	}
	return nil
}
