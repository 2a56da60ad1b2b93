package fileserve

import (
	"bytes"
	"net/url"
	"strings"
)

// RewritePlaylist returns an HLS playlist whose references to files next to
// it (segments, variant playlists, EXT-X-MAP and EXT-X-KEY URIs, and the
// like) are replaced by link(ref), ref being the reference's decoded path
// relative to the playlist. Absolute URLs, path-absolute references and
// everything else stay byte for byte: a careful line rewrite rather than a
// parse and re-encode, so that tags this code does not know survive.
func RewritePlaylist(body []byte, link func(ref string) string) []byte {
	var out bytes.Buffer
	out.Grow(len(body) + len(body)/2)
	for rest := body; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i+1], rest[i+1:]
		} else {
			rest = nil
		}
		content := bytes.TrimRight(line, "\r\n")
		eol := line[len(content):]
		switch {
		case len(bytes.TrimSpace(content)) == 0:
			out.Write(line)
		case content[0] == '#':
			out.WriteString(rewriteURIAttr(string(content), link))
			out.Write(eol)
		default:
			text := string(content)
			trimmed := strings.TrimSpace(text)
			if u, ok := rewriteRef(trimmed, link); ok {
				out.WriteString(u)
			} else {
				out.WriteString(text)
			}
			out.Write(eol)
		}
	}
	return out.Bytes()
}

// rewriteURIAttr rewrites the URI="…" attributes of a tag line (EXT-X-MAP,
// EXT-X-KEY, EXT-X-MEDIA, EXT-X-I-FRAME-STREAM-INF, EXT-X-PART…). Quoted
// strings of HLS have no escapes: a value ends at the next quote.
func rewriteURIAttr(line string, link func(string) string) string {
	if !strings.HasPrefix(line, "#EXT") {
		return line // a comment
	}
	var b strings.Builder
	for {
		i := indexAttr(line, `URI="`)
		if i < 0 {
			b.WriteString(line)
			return b.String()
		}
		start := i + len(`URI="`)
		end := strings.IndexByte(line[start:], '"')
		if end < 0 {
			b.WriteString(line)
			return b.String()
		}
		b.WriteString(line[:start])
		if u, ok := rewriteRef(line[start:start+end], link); ok {
			b.WriteString(u)
		} else {
			b.WriteString(line[start : start+end])
		}
		line = line[start+end:]
	}
}

// indexAttr finds an attribute name at the start of an attribute (after ':'
// or ','), so that KEYURI="…" or a URI=" inside another quoted value is
// not taken for it.
func indexAttr(line, attr string) int {
	quoted := false
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c == '"':
			quoted = !quoted
		case !quoted && (c == ':' || c == ',') && strings.HasPrefix(line[i+1:], attr):
			return i + 1
		}
	}
	return -1
}

// rewriteRef returns link(path) for a relative reference to a file, and false
// for anything else (absolute URLs, path-absolute references, queries or
// fragments only, unparsable text).
func rewriteRef(ref string, link func(string) string) (string, bool) {
	if ref == "" || strings.HasPrefix(ref, "/") || strings.ContainsAny(ref, "\x00\\") {
		return "", false
	}
	u, err := url.Parse(ref)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" || u.Path == "" {
		return "", false
	}
	return link(u.Path), true
}
