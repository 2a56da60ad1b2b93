// Command livehooks is the self-hosted recording-callback service: serve runs
// it, listen receives and verifies callbacks locally, notify posts an event from
// a shell hook, creds shows and rotates credentials; backup, restore and
// migrate-store copy its store.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "livehooks:", err)
		os.Exit(1)
	}
}

// env is what a command needs from its surroundings, so the whole program runs
// in-process in tests.
type env struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := &env{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "livehooks",
		Short:         "Self-hosted recording callbacks for live streaming, Huawei Cloud Live-compatible",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return bindEnv(cmd.Flags(), getenv)
		},
	}
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newServeCommand(e), newListenCommand(e), newNotifyCommand(e), newCredsCommand(e), newVersionCommand(e),
		newBackupCommand(e), newRestoreCommand(e), newMigrateStoreCommand(e))
	return root.ExecuteContext(ctx)
}

// envFlag marks a flag as settable from an environment variable and says so in
// its help. Repeatable flags read a space-separated list.
func envFlag(fs *pflag.FlagSet, name, variable string) {
	f := fs.Lookup(name)
	if f == nil {
		panic("envFlag: no flag " + name)
	}
	f.Usage += " (env " + variable + ")"
	_ = fs.SetAnnotation(name, "env", []string{variable})
}

// bindEnv sets every flag not given on the command line from its variable.
func bindEnv(fs *pflag.FlagSet, getenv func(string) string) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		vars := f.Annotations["env"]
		if err != nil || f.Changed || len(vars) == 0 {
			return
		}
		v := getenv(vars[0])
		if v == "" {
			return
		}
		if _, repeatable := f.Value.(pflag.SliceValue); repeatable {
			for _, item := range strings.Fields(v) {
				if e := f.Value.Set(item); e != nil {
					err = fmt.Errorf("%s: %w", vars[0], e)
					return
				}
			}
			return
		}
		if e := f.Value.Set(v); e != nil {
			err = fmt.Errorf("%s: %w", vars[0], e)
		}
	})
	return err
}
