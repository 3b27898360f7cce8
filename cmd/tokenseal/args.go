package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// Flags anywhere. urfave/cli v2 parses each level of the command line
// with Go's flag package, which stops at the first argument that is not
// a flag, and knows the program's (global) flags only before the command
// name. tokenseal takes flags as git, age and gpg do: before and after
// arguments, global flags at any position, and "--" ends the flags.
// reorderArgs rewrites the command line into the one order the library
// understands, using the command tree's own flag definitions:
//
//	tokenseal GLOBAL-FLAGS CMD CMD-FLAGS SUBCMD SUBCMD-FLAGS [--] ARGS...
//
// Each flag goes to the deepest command on the path that defines it (so
// --verbose after `open` goes to the program, --state-dir before `trust`
// goes to `trust list`); a flag nobody defines stays with the deepest
// command, whose error then names it. A flag's value is the next word
// when the flag takes one, as the flag package reads it (`-o -` is
// stdout). "--generate-bash-completion" stays last, where the library
// looks for it.

// completionFlag is urfave/cli's hidden completion flag.
const completionFlag = "--generate-bash-completion"

// flagWord is one flag as typed: the flag word and, when separate, its
// value.
type flagWord struct {
	words []string
	name  string
}

// cmdLine is a command line read with the command tree: the commands it
// names, its flags and its other arguments.
type cmdLine struct {
	prog      string
	path      []*cli.Command // the commands named, in order
	flags     []flagWord
	positions []string
	dashdash  bool // "--" was given
	complete  bool // it ended in completionFlag
}

// parseCmdLine reads args (args[0] is the program).
func parseCmdLine(app *cli.App, args []string) *cmdLine {
	l := &cmdLine{}
	if len(args) == 0 {
		return l
	}
	l.prog = args[0]
	rest := args[1:]
	if n := len(rest); n > 0 && rest[n-1] == completionFlag {
		l.complete, rest = true, rest[:n-1]
	}
	for i := 0; i < len(rest); i++ {
		w := rest[i]
		switch {
		case l.dashdash:
			l.positions = append(l.positions, w)
		case w == "--":
			l.dashdash = true
		case len(w) > 1 && w[0] == '-':
			name, _, hasValue := strings.Cut(strings.TrimLeft(w, "-"), "=")
			fw := flagWord{words: []string{w}, name: name}
			if !hasValue && takesValue(app, l.path, name) && i+1 < len(rest) {
				i++
				fw.words = append(fw.words, rest[i])
			}
			l.flags = append(l.flags, fw)
		case len(l.positions) == 0 && subcommand(app, l.path, w) != nil:
			l.path = append(l.path, subcommand(app, l.path, w))
		default:
			l.positions = append(l.positions, w)
		}
	}
	return l
}

// reorderArgs returns args (args[0] is the program) in the order
// urfave/cli parses. It never drops or changes a word.
func reorderArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	return parseCmdLine(app, args).reordered(app)
}

// reordered is the command line in urfave/cli's order.
func (l *cmdLine) reordered(app *cli.App) []string {
	levels := make([][]string, len(l.path)+1) // 0: the program
	for _, f := range l.flags {
		lv := flagLevel(app, l.path, f.name)
		levels[lv] = append(levels[lv], f.words...)
	}
	out := append([]string{l.prog}, levels[0]...)
	for i, c := range l.path {
		out = append(out, c.Name)
		out = append(out, levels[i+1]...)
	}
	if l.dashdash {
		out = append(out, "--")
	}
	out = append(out, l.positions...)
	if l.complete {
		out = append(out, completionFlag)
	}
	return out
}

// typed returns the names (each flag's first name) of the flags given on
// the command line, as opposed to their environment variables.
func (l *cmdLine) typed(app *cli.App) map[string]bool {
	m := map[string]bool{}
	for _, f := range l.flags {
		for lv := len(l.path); lv >= 0; lv-- {
			if def := findFlag(levelFlags(app, l.path, lv), f.name); def != nil {
				m[def.Names()[0]] = true
				break
			}
		}
	}
	return m
}

// subcommand returns the subcommand of the last command on path (or of
// the program) that name names, or nil.
func subcommand(app *cli.App, path []*cli.Command, name string) *cli.Command {
	cmds := app.Commands
	if len(path) > 0 {
		cmds = path[len(path)-1].Subcommands
	}
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// levelFlags are the flags of a level of the path: 0 is the program's
// (with --version), i the flags of path[i-1]; --help is everywhere.
func levelFlags(app *cli.App, path []*cli.Command, level int) []cli.Flag {
	if level == 0 {
		return append([]cli.Flag{cli.HelpFlag, cli.VersionFlag}, app.Flags...)
	}
	return append([]cli.Flag{cli.HelpFlag}, path[level-1].Flags...)
}

// flagLevel is the deepest level of the path that defines name; an
// unknown flag goes to the deepest level.
func flagLevel(app *cli.App, path []*cli.Command, name string) int {
	for l := len(path); l >= 0; l-- {
		if findFlag(levelFlags(app, path, l), name) != nil {
			return l
		}
	}
	return len(path)
}

// takesValue reports whether flag name takes a value: as defined on the
// path so far, else anywhere below it (a command's flag typed before the
// command's name). Every definition of a name agrees on this (a test
// checks), so the first found decides.
func takesValue(app *cli.App, path []*cli.Command, name string) bool {
	for l := len(path); l >= 0; l-- {
		if f := findFlag(levelFlags(app, path, l), name); f != nil {
			return flagTakesValue(f)
		}
	}
	cmds := app.Commands
	if len(path) > 0 {
		cmds = path[len(path)-1].Subcommands
	}
	if f := findFlagBelow(cmds, name); f != nil {
		return flagTakesValue(f)
	}
	return false
}

func findFlagBelow(cmds []*cli.Command, name string) cli.Flag {
	for _, c := range cmds {
		if f := findFlag(c.Flags, name); f != nil {
			return f
		}
		if f := findFlagBelow(c.Subcommands, name); f != nil {
			return f
		}
	}
	return nil
}

func findFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

func flagTakesValue(f cli.Flag) bool {
	df, ok := f.(cli.DocGenerationFlag)
	return ok && df.TakesValue()
}
