package main

import (
	"cmp"
	"database/sql"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"slices"
)

// walFrames says which B-trees the last transactions wrote: it reads the
// frames of the database's write-ahead log (those since its last
// checkpoint, with the log's current salts) and names the table or index
// of each frame's page with SQLite's dbstat table, read through the log. A
// group commit writes every page it changed as one frame (two pwrite calls),
// so the frames per commit of each B-tree are what it costs the commit.
func walFrames(w io.Writer, dbPath string) error {
	wal, err := os.ReadFile(dbPath + "-wal")
	if err != nil {
		return err
	}
	if len(wal) < 32 {
		return fmt.Errorf("%s-wal: no frames", dbPath)
	}
	pageSize := int(binary.BigEndian.Uint32(wal[8:12]))
	salt := wal[16:24]
	pages := map[uint32]int{}
	frames, commits := 0, 0
	for off := 32; off+24+pageSize <= len(wal); off += 24 + pageSize {
		h := wal[off : off+24]
		if string(h[8:16]) != string(salt) {
			break // a frame of an earlier pass over the log
		}
		frames++
		pages[binary.BigEndian.Uint32(h[0:4])]++
		if binary.BigEndian.Uint32(h[4:8]) != 0 { // the database size: set on a commit's last frame
			commits++
		}
	}
	if commits == 0 {
		return fmt.Errorf("%s-wal: no committed frames since the last checkpoint", dbPath)
	}
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro")
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name, pageno FROM dbstat`)
	if err != nil {
		return fmt.Errorf("dbstat: %w", err)
	}
	owner := map[uint32]string{}
	for rows.Next() {
		var (
			name string
			page uint32
		)
		if err := rows.Scan(&name, &page); err != nil {
			rows.Close()
			return err
		}
		owner[page] = name
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	by := map[string]int{}
	for page, n := range pages {
		name := owner[page]
		if name == "" {
			name = "(free page)"
		}
		by[name] += n
	}
	type row struct {
		name string
		n    int
	}
	var out []row
	for name, n := range by {
		out = append(out, row{name, n})
	}
	slices.SortFunc(out, func(a, b row) int { return cmp.Or(b.n-a.n, cmp.Compare(a.name, b.name)) })
	fmt.Fprintf(w, "WAL frames since the last checkpoint: %d in %d commits, %.1f per commit (%d B pages)\n",
		frames, commits, float64(frames)/float64(commits), pageSize)
	for _, r := range out {
		fmt.Fprintf(w, "  %-32s %5.2f per commit  %4.1f %%\n", r.name, float64(r.n)/float64(commits), 100*float64(r.n)/float64(frames))
	}
	return nil
}
