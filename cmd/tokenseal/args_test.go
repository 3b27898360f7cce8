package main

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// recorded is what a command's action saw.
type recorded struct {
	cmd   string
	args  []string
	set   map[string]bool
	value map[string]string
}

// recordingApp is the real command tree (flags, Before hooks, the
// config file) with every action replaced by one that records what it
// was given.
func recordingApp(t *testing.T) (*cli.App, *recorded) {
	t.Helper()
	t.Setenv("TOKENSEAL_CONFIG", "/dev/null")
	app := newApp(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	rec := &recorded{}
	var clone func(path string, cmds []*cli.Command) []*cli.Command
	clone = func(path string, cmds []*cli.Command) []*cli.Command {
		var out []*cli.Command
		for _, c := range cmds {
			cp := *c
			p := strings.TrimSpace(path + " " + c.Name)
			cp.Subcommands = clone(p, c.Subcommands)
			if len(c.Subcommands) == 0 {
				cp.Action = func(ctx *cli.Context) error {
					rec.cmd, rec.args = p, ctx.Args().Slice()
					rec.set, rec.value = map[string]bool{}, map[string]string{}
					for _, fl := range append(slices.Clone(app.Flags), cp.Flags...) {
						n := fl.Names()[0]
						rec.set[n] = ctx.IsSet(n)
						if v := ctx.Value(n); v != nil {
							rec.value[n] = flagString(v)
						}
					}
					return nil
				}
			}
			out = append(out, &cp)
		}
		return out
	}
	app.Commands = clone("", app.Commands)
	return app, rec
}

func flagString(v any) string {
	switch v := v.(type) {
	case cli.StringSlice:
		return strings.Join(v.Value(), ",")
	case *cli.StringSlice:
		return strings.Join(v.Value(), ",")
	}
	return fmt.Sprint(v)
}

// sampleValue is a value each kind of flag accepts.
func sampleValue(f cli.Flag) string {
	switch f.(type) {
	case *cli.Uint64Flag, *cli.IntFlag, *cli.UintFlag, *cli.Int64Flag:
		return "7"
	case *cli.DurationFlag:
		return "3s"
	}
	if _, ok := f.(*cli.GenericFlag); ok {
		return "3d"
	}
	return "v-1"
}

// leaves returns every command without subcommands, with its path.
func leaves(cmds []*cli.Command, path []string) map[string]*cli.Command {
	out := map[string]*cli.Command{}
	for _, c := range cmds {
		p := append(slices.Clone(path), c.Name)
		if len(c.Subcommands) == 0 {
			out[strings.Join(p, " ")] = c
			continue
		}
		for k, v := range leaves(c.Subcommands, p) {
			out[k] = v
		}
	}
	return out
}

// TestFlagsAnywhere runs every command of the tree with each of its own
// flags, and each global flag, placed after an argument (and, for the
// command's own flags, before the command's name too), and checks the
// action sees the flag and the argument as if written in the library's
// order.
func TestFlagsAnywhere(t *testing.T) {
	app, rec := recordingApp(t)
	globals := slices.Clone(app.Flags) // before Run adds --help and --version
	cmds := leaves(app.Commands, nil)
	if len(cmds) < 20 {
		t.Fatalf("only %d commands found", len(cmds))
	}
	for path, c := range cmds {
		words := strings.Fields(path)
		check := func(args []string, flag cli.Flag, want string) {
			t.Helper()
			if err := app.Run(reorderArgs(app, append([]string{"tokenseal"}, args...))); err != nil {
				t.Errorf("%v: %v", args, err)
				return
			}
			n := flag.Names()[0]
			if rec.cmd != path || !rec.set[n] || (want != "" && rec.value[n] != want) || !slices.Contains(rec.args, "ARG") {
				t.Errorf("%v: ran %q with args %v, %s set %v value %q; want %q", args, rec.cmd, rec.args, n, rec.set[n], rec.value[n], path)
			}
		}
		for _, f := range append(slices.Clone(c.Flags), globals...) {
			if f == flagConfig || f == cli.HelpFlag {
				continue // a file that must exist
			}
			for _, name := range f.Names() {
				dash := "--"
				if len(name) == 1 {
					dash = "-"
				}
				fw := []string{dash + name}
				want := ""
				if flagTakesValue(f) {
					want = sampleValue(f)
					fw = append(fw, want)
				}
				// CMD ARG --flag [value]
				check(append(append(slices.Clone(words), "ARG"), fw...), f, want)
				// --flag [value] CMD ARG
				check(append(append(slices.Clone(fw), words...), "ARG"), f, want)
				// CMD --flag=value ARG
				if flagTakesValue(f) {
					check(append(append(slices.Clone(words), dash+name+"="+want), "ARG"), f, want)
				}
			}
		}
	}
}

// TestFlagDefinitionsAgree: a flag name taking a value in one command
// takes one in every command (reorderArgs reads a flag typed before its
// command's name by any definition).
func TestFlagDefinitionsAgree(t *testing.T) {
	app := newApp(nil, &bytes.Buffer{}, &bytes.Buffer{})
	kinds := map[string]bool{}
	var walk func([]cli.Flag, []*cli.Command)
	walk = func(flags []cli.Flag, cmds []*cli.Command) {
		for _, f := range flags {
			for _, n := range f.Names() {
				if k, ok := kinds[n]; ok && k != flagTakesValue(f) {
					t.Errorf("flag %s takes a value in one command and not in another", n)
				}
				kinds[n] = flagTakesValue(f)
			}
		}
		for _, c := range cmds {
			walk(c.Flags, c.Subcommands)
		}
	}
	walk(append([]cli.Flag{cli.HelpFlag, cli.VersionFlag}, app.Flags...), app.Commands)
}

func TestReorderArgs(t *testing.T) {
	app := newApp(nil, &bytes.Buffer{}, &bytes.Buffer{})
	for _, tc := range []struct{ in, want string }{
		{"seal notes.txt -r bob.pem -o out", "seal -r bob.pem -o out notes.txt"},
		{"open x.tseal -o y", "open -o y x.tseal"},
		{"ledger forget alice --yes", "ledger forget --yes alice"},
		{"open --verbose x", "--verbose open x"},
		{"--state-dir d trust list", "trust list --state-dir d"},
		{"open -o - x.tseal", "open -o - x.tseal"},
		{"open x.tseal -- -o", "open -- x.tseal -o"},
		{"open -- -x.tseal --verbose", "open -- -x.tseal --verbose"},
		{"seal --max-skew=-1h a", "seal --max-skew=-1h a"},
		{"open a --nosuch b", "open --nosuch a b"},
		{"help seal", "help seal"},
		{"seal key", "seal key"},
		{"key list --json -q", "-q key list --json"},
		{"open --all --generate-bash-completion", "open --all --generate-bash-completion"},
		{"seal -", "seal -"},
	} {
		got := strings.Join(reorderArgs(app, append([]string{"tokenseal"}, strings.Fields(tc.in)...))[1:], " ")
		if got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}
