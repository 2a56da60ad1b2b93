package objstore

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/minio/minio-go/v7"
)

// Limits on what a playlist may make livehooks upload.
const (
	maxPlaylistBytes = 4 << 20
	maxHLSFiles      = 20000
	maxHLSDepth      = 2 // a master playlist and its media playlists
)

// uploadHLS uploads a playlist and the files it lists (segments, fMP4 init
// sections, nested media playlists) under key's folder, the playlist last so
// that it never names an object that is not there yet. Only relative URIs
// that stay inside the playlist's directory are followed; the directory is
// opened as an os.Root, so a symbolic link cannot lead out of it either.
func uploadHLS(ctx context.Context, c *minio.Client, bucket, key, playlist string, progress io.Reader) error {
	root, err := os.OpenRoot(filepath.Dir(playlist))
	if err != nil {
		return fmt.Errorf("objstore: open playlist directory: %w", err)
	}
	defer root.Close()
	u := &hlsUpload{c: c, bucket: bucket, dir: path.Dir(key), root: root, seen: map[string]bool{}, progress: progress}
	name := filepath.Base(playlist)
	u.seen[name] = true
	return u.playlist(ctx, name, key, 0)
}

type hlsUpload struct {
	c      *minio.Client
	bucket string
	dir    string // the object folder of the top playlist
	root   *os.Root
	seen   map[string]bool // files (relative to root) already taken
	// progress hears of every byte sent (watchStall).
	progress io.Reader
}

// playlist uploads the files a playlist lists, then the playlist itself as
// key. name is the playlist's path relative to the root.
func (u *hlsUpload) playlist(ctx context.Context, name, key string, depth int) error {
	body, err := u.read(name)
	if err != nil {
		return err
	}
	for _, uri := range playlistURIs(body) {
		rel, ok := localPath(path.Dir(name), uri)
		if !ok || u.seen[rel] {
			continue
		}
		u.seen[rel] = true
		if len(u.seen) > maxHLSFiles {
			return fmt.Errorf("objstore: playlist %s lists more than %d files", name, maxHLSFiles)
		}
		objKey := u.objectKey(rel)
		if strings.EqualFold(path.Ext(rel), ".m3u8") {
			if depth+1 >= maxHLSDepth {
				return fmt.Errorf("objstore: playlist %s nests playlists deeper than %d", name, maxHLSDepth)
			}
			if err := u.playlist(ctx, rel, objKey, depth+1); err != nil {
				return err
			}
			continue
		}
		if err := u.file(ctx, rel, objKey); err != nil {
			return err
		}
	}
	_, err = u.c.PutObject(ctx, u.bucket, key, bytes.NewReader(body), int64(len(body)), putOptions(ContentType(name), u.progress))
	if err != nil {
		return fmt.Errorf("objstore: put %s/%s: %w", u.bucket, key, err)
	}
	return nil
}

func (u *hlsUpload) objectKey(rel string) string {
	if u.dir == "." {
		return rel
	}
	return u.dir + "/" + rel
}

func (u *hlsUpload) read(name string) ([]byte, error) {
	f, err := u.root.Open(filepath.FromSlash(name))
	if err != nil {
		return nil, fmt.Errorf("objstore: open playlist: %w", err)
	}
	defer f.Close()
	body, err := io.ReadAll(io.LimitReader(f, maxPlaylistBytes+1))
	if err != nil {
		return nil, fmt.Errorf("objstore: read playlist %s: %w", name, err)
	}
	if len(body) > maxPlaylistBytes {
		return nil, fmt.Errorf("objstore: playlist %s is larger than %d bytes", name, maxPlaylistBytes)
	}
	if !bytes.HasPrefix(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")), []byte("#EXTM3U")) {
		return nil, fmt.Errorf("objstore: %s is not an HLS playlist (no #EXTM3U)", name)
	}
	return body, nil
}

func (u *hlsUpload) file(ctx context.Context, rel, key string) error {
	f, err := u.root.Open(filepath.FromSlash(rel))
	if err != nil {
		return fmt.Errorf("objstore: open segment: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("objstore: segment %s: %w", rel, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("objstore: segment %s is not a regular file", rel)
	}
	_, err = u.c.PutObject(ctx, u.bucket, key, f, fi.Size(), putOptions(ContentType(rel), u.progress))
	if err != nil {
		return fmt.Errorf("objstore: put %s/%s: %w", u.bucket, key, err)
	}
	return nil
}

// playlistURIs returns the URIs of a playlist in order: its URI lines and the
// URI attribute of #EXT-X-MAP (fMP4 init sections). Keys (#EXT-X-KEY) are
// not uploaded: they do not belong in a download bucket.
func playlistURIs(body []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 4096), maxPlaylistBytes)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
		case strings.HasPrefix(line, "#EXT-X-MAP:"):
			if uri, ok := quotedAttr(line[len("#EXT-X-MAP:"):], "URI"); ok {
				out = append(out, uri)
			}
		case strings.HasPrefix(line, "#"):
		default:
			out = append(out, line)
		}
	}
	return out
}

// quotedAttr returns the quoted value of attribute name in an HLS attribute list.
func quotedAttr(list, name string) (string, bool) {
	for list != "" {
		eq := strings.IndexByte(list, '=')
		if eq < 0 {
			return "", false
		}
		k, rest := strings.TrimSpace(list[:eq]), list[eq+1:]
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				return "", false
			}
			v, rest = rest[1:end+1], rest[end+2:]
			if k == name {
				return v, true
			}
		} else if k == name {
			return "", false // URI is always quoted
		}
		if c := strings.IndexByte(rest, ','); c >= 0 {
			list = rest[c+1:]
		} else {
			list = ""
		}
	}
	return "", false
}

// localPath resolves a playlist URI against the playlist's directory dir
// (relative to the root) and reports whether it names a local file: no scheme,
// host, absolute path or escape by "..". A query or fragment is dropped.
func localPath(dir, uri string) (string, bool) {
	p, err := url.Parse(uri)
	if err != nil || p.Scheme != "" || p.Host != "" || p.Opaque != "" || p.Path == "" || strings.HasPrefix(p.Path, "/") {
		return "", false
	}
	rel := path.Join(dir, p.Path)
	if !filepath.IsLocal(filepath.FromSlash(rel)) || strings.ContainsRune(rel, '\\') {
		return "", false
	}
	return rel, true
}
