package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/livehooks/livehooks"
)

// Errors of RecordDirs.Resolve. A file outside every record directory, or
// missing, is the recorder's problem (a RECORD_FAILED event with the error's
// text); a file of another project is refused (EFORBIDDEN, 403 at the hook).
var (
	ErrOutsideRecordDirs = errors.New(MsgOutsideRecordDirs)
	ErrFileNotFound      = errors.New(MsgFileNotFound)
	ErrOtherProject      = livehooks.Errorf(livehooks.EFORBIDDEN, "the recording file is not in a record directory of this project: "+
		"a directory given as --record-dir PROJECT:DIR belongs to PROJECT, and a plain --record-dir DIR shared by several projects "+
		"holds each project's files under DIR/<project_id>/")
)

// RecordDirs are the only directories whose recorder files livehooks reads
// (--record-dir), and the rule that says which project a file belongs to:
//   - a directory given as PROJECT:DIR belongs to PROJECT alone;
//   - a plain DIR is shared: while a single tenant holds the ingest secrets
//     (one secret, whatever project it names, or none), every file in it
//     belongs to every project, as before directories were bound to
//     projects; with several tenants, a file belongs to project P only under
//     DIR/P/.
//
// When directories nest, the innermost one that holds a file decides.
// Symbolic links are resolved on both sides. RecordDirs is safe for
// concurrent use.
type RecordDirs struct {
	dirs   []recordDir
	single func() bool
}

type recordDir struct {
	project string   // "" for a shared directory
	paths   []string // the directory as configured (absolute, clean) and its real path
}

// ParseRecordDirs reads --record-dir values: DIR or PROJECT:DIR (a DIR
// that starts with a project id and a colon can be written ./DIR). Each
// directory must exist. single reports whether one tenant holds every
// ingest secret (see RecordDirs); nil means it does.
func ParseRecordDirs(specs []string, single func() bool) (*RecordDirs, error) {
	if single == nil {
		single = func() bool { return true }
	}
	d := &RecordDirs{single: single}
	for _, spec := range specs {
		project, dir := "", spec
		if p, rest, ok := strings.Cut(spec, ":"); ok && isProjectID(p) && rest != "" {
			project, dir = p, rest
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("record dir %q: %w", spec, err)
		}
		st, err := os.Stat(abs)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("record dir %q does not exist", spec)
		} else if err != nil {
			return nil, fmt.Errorf("record dir %q: %w", spec, err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("record dir %q: not a directory", spec)
		}
		real, err := filepath.EvalSymlinks(abs)
		if err != nil {
			return nil, fmt.Errorf("record dir %q: %w", spec, err)
		}
		rd := recordDir{project: project, paths: []string{filepath.Clean(abs)}}
		if real != rd.paths[0] {
			rd.paths = append(rd.paths, real)
		}
		d.dirs = append(d.dirs, rd)
	}
	return d, nil
}

// isProjectID reports whether s can be a project id: 1-64 of [A-Za-z0-9_.-].
func isProjectID(s string) bool {
	return len(s) <= 64 && livehooks.IsStreamName(s)
}

// Len is the number of record directories.
func (d *RecordDirs) Len() int { return len(d.dirs) }

// String lists the directories for logs, as PROJECT:DIR or DIR.
func (d *RecordDirs) String() string {
	var b strings.Builder
	for i, rd := range d.dirs {
		if i > 0 {
			b.WriteByte(' ')
		}
		if rd.project != "" {
			b.WriteString(rd.project + ":")
		}
		b.WriteString(rd.paths[0])
	}
	return b.String()
}

// Resolve returns the real path of a recorder's file (symlinks resolved)
// when it belongs to the project, else ErrOutsideRecordDirs, ErrFileNotFound
// (a missing file of the project) or ErrOtherProject. The file's owner is
// checked before the file is looked at, so that another project's files
// cannot even be told to exist.
func (d *RecordDirs) Resolve(projectID, path string) (string, error) {
	if path == "" || !filepath.IsAbs(path) || strings.ContainsRune(path, 0) {
		return "", ErrOutsideRecordDirs
	}
	clean := filepath.Clean(path)
	inside, mine := d.owner(projectID, clean)
	if inside && !mine {
		return "", ErrOtherProject
	}
	real, err := filepath.EvalSymlinks(clean)
	if err != nil {
		// A missing file of the project's directories is the recorder's
		// failure; anything else is not our business.
		if errors.Is(err, fs.ErrNotExist) && inside {
			return "", ErrFileNotFound
		}
		return "", ErrOutsideRecordDirs
	}
	inside, mine = d.owner(projectID, real)
	switch {
	case !inside:
		return "", ErrOutsideRecordDirs
	case !mine:
		return "", ErrOtherProject
	}
	return real, nil
}

// owner reports whether path is strictly inside a record directory and, if
// so, whether it belongs to project (by the innermost directory that holds
// it).
func (d *RecordDirs) owner(project, path string) (inside, mine bool) {
	best, bestRel := -1, ""
	bestLen := -1
	for i, rd := range d.dirs {
		for _, dir := range rd.paths {
			rel, ok := within(dir, path)
			if ok && len(dir) > bestLen {
				best, bestRel, bestLen = i, rel, len(dir)
			}
		}
	}
	if best < 0 {
		return false, false
	}
	rd := d.dirs[best]
	switch {
	case rd.project != "":
		return true, rd.project == project
	case d.single():
		return true, true
	}
	// A shared directory with several tenants: DIR/<project>/….
	first, _, nested := strings.Cut(bestRel, string(filepath.Separator))
	return true, nested && first == project
}

// within returns path relative to dir when path is strictly inside dir.
func within(dir, path string) (string, bool) {
	rel, err := filepath.Rel(dir, path)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", false
	}
	return rel, true
}

// refuse reports a file that Resolve refused: another project's file is
// refused at the hook (EFORBIDDEN, no event for the stream); a file outside
// the record directories, or missing, is the stream's RECORD_FAILED.
func (s *Source) refuse(ctx context.Context, key livehooks.StreamKey, path string, err error) error {
	if livehooks.ErrorCode(err) == livehooks.EFORBIDDEN {
		s.o.Logger.Warn("recording file refused: it belongs to another project", streamAttrs(key, "path", clip(path, 256), "record_dirs", s.dirs.String())...)
		return err
	}
	s.o.Logger.Warn("recording file refused", streamAttrs(key, "path", clip(path, 256), "reason", err.Error(), "record_dirs", s.dirs.String())...)
	return s.fail(ctx, key, err.Error())
}

// RecordDirs returns the record directories the Source reads files from.
func (s *Source) RecordDirs() *RecordDirs { return s.dirs }

// Forbidden answers a hook whose handling failed with EFORBIDDEN (a file of
// another project) with a 403 in the Huawei error format, as the API answers
// a credential that may not act on a project, and reports whether it did.
func Forbidden(w http.ResponseWriter, err error) bool {
	if livehooks.ErrorCode(err) != livehooks.EFORBIDDEN {
		return false
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusForbidden)
	_ = json.NewEncoder(w).Encode(map[string]string{
		"error_code": "APIGW.0302",
		"error_msg":  "The credential is not authorized for this project: " + livehooks.ErrorMessage(err),
	})
	return true
}
