package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/livehooks/livehooks/store/postgres"
	"github.com/livehooks/livehooks/store/sqlite"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func newVersionCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := version
			if info, ok := debug.ReadBuildInfo(); ok && v == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
				v = info.Main.Version
			}
			// The schema versions say which stores this binary can open: it
			// refuses one that a newer livehooks migrated further.
			_, err := fmt.Fprintf(e.stdout, "livehooks %s %s/%s %s\nstore schema: sqlite %d, postgres %d\n",
				v, runtime.GOOS, runtime.GOARCH, runtime.Version(), sqlite.SchemaVersion(), postgres.SchemaVersion())
			return err
		},
	}
}
