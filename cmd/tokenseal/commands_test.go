package main

import (
	"bytes"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestCommandTree fails on a command or flag without usage, or a command
// without an action.
func TestCommandTree(t *testing.T) {
	app := newApp(nil, &bytes.Buffer{}, &bytes.Buffer{})
	checkFlags(t, "tokenseal", app.Flags)
	var walk func(path string, cmds []*cli.Command)
	walk = func(path string, cmds []*cli.Command) {
		for _, c := range cmds {
			p := path + " " + c.Name
			if c.Usage == "" {
				t.Errorf("%s: no usage", p)
			}
			if c.Action == nil {
				t.Errorf("%s: no action", p)
			}
			checkFlags(t, p, c.Flags)
			walk(p, c.Subcommands)
		}
	}
	walk("tokenseal", app.Commands)
}

func checkFlags(t *testing.T, path string, flags []cli.Flag) {
	t.Helper()
	for _, f := range flags {
		df, ok := f.(cli.DocGenerationFlag)
		if !ok || df.GetUsage() == "" {
			t.Errorf("%s: flag %v has no usage", path, f.Names())
		}
	}
}
