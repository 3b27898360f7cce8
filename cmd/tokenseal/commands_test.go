package main

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/token"
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

func TestExitCodes(t *testing.T) {
	for _, c := range []struct {
		err  error
		code int
	}{
		{nil, 0},
		{errors.New("x"), 1},
		{usageErrorf("bad"), 2},
		{fmt.Errorf("wrapped: %w", token.ErrTokenNotFound), 3},
		{&token.Error{Op: "C_Login", Code: 0xa0}, 3},
		{fmt.Errorf("%w: %w", token.ErrLoginFailed, &token.Error{Op: "C_Login", Code: 0xa0}), 3},
		{fmt.Errorf("wrapped: %w", token.ErrTokenAmbiguous), 3},
		{fmt.Errorf("wrapped: %w", token.ErrPINInvalid), 3},
		{fmt.Errorf("wrapped: %w", token.ErrKeyMismatch), 3},
		// What the token's data failure becomes in token/keyring.
		{fmt.Errorf("open: %w", envelope.ErrUnwrap), 4},
	} {
		if got := exitCode(c.err); got != c.code {
			t.Errorf("exitCode(%v) = %d, want %d", c.err, got, c.code)
		}
	}
	var buf bytes.Buffer
	report(&buf, errors.New("two\nlines"))
	if got := buf.String(); got != "tokenseal: error: two; lines\n" {
		t.Errorf("report: %q", got)
	}
}
