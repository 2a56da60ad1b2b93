package source_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/livehooks/livehooks/source"
)

// recordTree builds record directories and files for the Resolve tests:
//
//	shared/                   plain --record-dir
//	  top.flv, A/a.flv, B/b.flv, B/sub/c.flv
//	  B/link-to-A.flv  -> ../A/a.flv
//	bound-a/                  --record-dir A:bound-a
//	  x.flv
//	  escape.flv -> ../shared/B/b.flv
//	  nested-b/               --record-dir B:bound-a/nested-b
//	    y.flv
//	link-to-shared -> shared  (a configured path with a symlink)
//	outside.flv
func recordTree(t testing.TB) (root string, specs []string) {
	t.Helper()
	root = t.TempDir()
	for _, f := range []string{"shared/top.flv", "shared/A/a.flv", "shared/B/b.flv", "shared/B/sub/c.flv", "bound-a/x.flv", "bound-a/nested-b/y.flv", "outside.flv"} {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("FLV"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"shared/B/link-to-A.flv": "../A/a.flv", "bound-a/escape.flv": "../shared/B/b.flv", "link-to-shared": "shared"} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	return root, []string{filepath.Join(root, "link-to-shared"), "A:" + filepath.Join(root, "bound-a"), "B:" + filepath.Join(root, "bound-a", "nested-b")}
}

func TestRecordDirsResolve(t *testing.T) {
	t.Parallel()
	root, specs := recordTree(t)
	real := func(p string) string {
		r, err := filepath.EvalSymlinks(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, single := range []bool{false, true} {
		dirs, err := source.ParseRecordDirs(specs, func() bool { return single })
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			project, path string
			want          string // real path (relative to root), or the error's text
			wantSingle    string // when single differs
		}{
			{"A", "shared/A/a.flv", "shared/A/a.flv", ""},
			{"A", "link-to-shared/A/a.flv", "shared/A/a.flv", ""},
			{"B", "shared/B/sub/c.flv", "shared/B/sub/c.flv", ""},
			{"B", "shared/A/a.flv", "other", "shared/A/a.flv"},
			{"B", "shared/B/../A/a.flv", "other", "shared/A/a.flv"},
			{"A", "shared/top.flv", "other", "shared/top.flv"},
			{"B", "shared/B/link-to-A.flv", "other", "shared/A/a.flv"},
			{"A", "shared/A/missing.flv", "missing", ""},
			{"B", "shared/A/missing.flv", "other", "missing"},
			{"A", "shared/A", "other", "shared/A"}, // a directory of the shared dir is not under DIR/A/
			{"A", "bound-a/x.flv", "bound-a/x.flv", ""},
			{"B", "bound-a/x.flv", "other", ""}, // a bound directory ignores the tenancy
			{"B", "bound-a/missing.flv", "other", ""},
			{"A", "bound-a/escape.flv", "other", "shared/B/b.flv"},
			{"B", "bound-a/nested-b/y.flv", "bound-a/nested-b/y.flv", ""}, // the innermost directory decides
			{"A", "bound-a/nested-b/y.flv", "other", ""},
			{"A", "outside.flv", "outside", ""},
			{"A", "shared", "outside", ""},
			{"A", "bound-a/..", "outside", ""},
			{"A", "/etc/passwd", "outside", ""},
		} {
			want := tc.want
			if single && tc.wantSingle != "" {
				want = tc.wantSingle
			}
			path := tc.path
			if !filepath.IsAbs(path) {
				path = filepath.Join(root, path)
			}
			got, err := dirs.Resolve(tc.project, path)
			switch want {
			case "other":
				if !errors.Is(err, source.ErrOtherProject) {
					t.Errorf("single=%v %s %s: %q %v, want ErrOtherProject", single, tc.project, tc.path, got, err)
				}
			case "missing":
				if !errors.Is(err, source.ErrFileNotFound) {
					t.Errorf("single=%v %s %s: %q %v, want ErrFileNotFound", single, tc.project, tc.path, got, err)
				}
			case "outside":
				if !errors.Is(err, source.ErrOutsideRecordDirs) {
					t.Errorf("single=%v %s %s: %q %v, want ErrOutsideRecordDirs", single, tc.project, tc.path, got, err)
				}
			default:
				if err != nil || got != real(want) {
					t.Errorf("single=%v %s %s: %q %v, want %s", single, tc.project, tc.path, got, err, real(want))
				}
			}
		}
	}
	for _, rel := range []string{"", "relative/a.flv", "/a\x00b"} {
		dirs, _ := source.ParseRecordDirs(specs, nil)
		if _, err := dirs.Resolve("A", rel); !errors.Is(err, source.ErrOutsideRecordDirs) {
			t.Errorf("%q: %v", rel, err)
		}
	}
}

func TestParseRecordDirs(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	colon := filepath.Join(root, "p1:dir")
	if err := os.Mkdir(colon, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dirs, err := source.ParseRecordDirs([]string{root, "p1:" + root, colon}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := root + " p1:" + root + " " + colon; dirs.String() != want {
		t.Errorf("String() = %q, want %q", dirs.String(), want)
	}
	for spec, want := range map[string]string{
		filepath.Join(root, "missing"):         "does not exist",
		"p1:" + filepath.Join(root, "missing"): "does not exist",
		file:                                   "not a directory",
	} {
		if _, err := source.ParseRecordDirs([]string{spec}, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", spec, err, want)
		}
	}
}

// FuzzRecordDirsResolve: whatever a hook names, Resolve returns a file that
// exists, has no symlink left in its path, and lies in a record directory of
// the asking project (bound to it, or under DIR/<project>/ of the shared
// one); otherwise one of its three errors.
func FuzzRecordDirsResolve(f *testing.F) {
	root, specs := recordTree(f)
	dirs, err := source.ParseRecordDirs(specs, func() bool { return false })
	if err != nil {
		f.Fatal(err)
	}
	realRoot, _ := filepath.EvalSymlinks(root)
	for _, seed := range [][2]string{
		{"A", "shared/A/a.flv"}, {"B", "shared/A/a.flv"}, {"B", "shared/B/link-to-A.flv"}, {"A", "bound-a/escape.flv"},
		{"B", "bound-a/nested-b/y.flv"}, {"A", "link-to-shared/A/../B/b.flv"}, {"..", "shared/../outside.flv"}, {"A", "shared//A/./a.flv"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, project, rel string) {
		got, err := dirs.Resolve(project, filepath.Join(root, rel))
		if err != nil {
			if !errors.Is(err, source.ErrOtherProject) && !errors.Is(err, source.ErrFileNotFound) && !errors.Is(err, source.ErrOutsideRecordDirs) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if r, err := filepath.EvalSymlinks(got); err != nil || r != got {
			t.Fatalf("%q is not a real path of an existing file (%q, %v)", got, r, err)
		}
		inside := func(dir string) bool {
			return strings.HasPrefix(got, filepath.Join(realRoot, dir)+string(filepath.Separator))
		}
		ok := false
		switch {
		case inside("bound-a/nested-b"):
			ok = project == "B"
		case inside("bound-a"):
			ok = project == "A"
		case inside("shared"):
			ok = project != "" && inside(filepath.Join("shared", project)) && !strings.ContainsRune(project, filepath.Separator) && project != "." && project != ".."
		}
		if !ok {
			t.Fatalf("project %q got %q", project, got)
		}
	})
}
