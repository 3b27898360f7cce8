package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tokenseal/tokenseal/envelope/state"
	"github.com/tokenseal/tokenseal/envelope/state/backend"
	"github.com/tokenseal/tokenseal/token"
	"github.com/urfave/cli/v2"
)

// Shell completion. The bash, zsh and fish scripts (completion.go) run
//
//	tokenseal __complete WORD... CURRENT
//
// with the words typed after "tokenseal" and the word being completed
// (empty for a new one). It prints the candidates, one a line, then one
// directive line: ":files" (the shell adds file names), ":dirs"
// (directory names) or ":none". Key labels come from the token's public
// objects and trusted names from the state directory: never a PIN, never
// a prompt, never a network connection. Any failure just completes
// nothing.
const completeCommand = "__complete"

// What a flag's value is, for completion; flags not listed complete
// nothing.
var flagCompletions = map[string]string{
	"output": ":files", "recipients-file": ":files", "pin-file": ":files", "so-pin-file": ":files",
	"new-pin-file": ":files", "config": ":files", "module": ":files", "sender": ":files",
	"remove-recipient": ":files", "manifest": ":files",
	"state-dir": ":dirs", "export-dir": ":dirs", "from": ":dirs", "to": ":dirs",
	"recipient": "recipient", "sign-with": "key", "to-self": "key", "label": "key",
	"token": "token", "type": "type", "usage": "usage", "max-age": "duration", "format": "format",
	"issuer": "key",
}

// argCompletions say what the arguments of a command are, by its path.
var argCompletions = map[string]string{
	"seal": ":files", "open": ":files", "inspect": ":files", "rewrap": ":files",
	"trust remove": "trusted", "ledger forget": "trusted", "completion": "shell",
	"help": "commands",
}

// completion is what is being completed.
type completion struct {
	app    *cli.App
	path   []*cli.Command
	values map[string]string // flag values typed so far, by first name
	args   int               // arguments before the current word
}

// runComplete answers one __complete request.
func runComplete(app *cli.App, words []string, stdout io.Writer) int {
	if len(words) == 0 {
		words = []string{""}
	}
	cands, directive := complete(app, words[:len(words)-1], words[len(words)-1])
	for _, c := range cands {
		fmt.Fprintln(stdout, c)
	}
	fmt.Fprintln(stdout, directive)
	return 0
}

// complete returns the candidates for cur after the words before it.
func complete(app *cli.App, before []string, cur string) ([]string, string) {
	cp := &completion{app: app, values: map[string]string{}}
	var pending cli.Flag // a flag whose value is cur or the next word
	dashdash := false
	for _, w := range before {
		if pending != nil {
			cp.values[pending.Names()[0]] = w
			pending = nil
			continue
		}
		switch {
		case dashdash:
			cp.args++
		case w == "--":
			dashdash = true
		case len(w) > 1 && w[0] == '-':
			name, v, hasValue := strings.Cut(strings.TrimLeft(w, "-"), "=")
			f := cp.flag(name)
			switch {
			case f == nil:
			case hasValue:
				cp.values[f.Names()[0]] = v
			case flagTakesValue(f):
				pending = f
			}
		case cp.args == 0 && subcommand(app, cp.path, w) != nil:
			cp.path = append(cp.path, subcommand(app, cp.path, w))
		default:
			cp.args++
		}
	}
	switch {
	case pending != nil:
		return cp.valueOf(pending.Names()[0])
	case strings.HasPrefix(cur, "-") && !dashdash:
		return cp.flagNames(), ":none"
	case cp.args == 0 && len(cp.subcommands()) > 0:
		return cp.subcommands(), ":none"
	}
	return cp.kind(argCompletions[cp.pathName()])
}

func (cp *completion) pathName() string {
	var names []string
	for _, c := range cp.path {
		names = append(names, c.Name)
	}
	return strings.Join(names, " ")
}

// flag finds a flag by name on the path, the program's included.
func (cp *completion) flag(name string) cli.Flag {
	for l := len(cp.path); l >= 0; l-- {
		if f := findFlag(levelFlags(cp.app, cp.path, l), name); f != nil {
			return f
		}
	}
	return nil
}

// flagNames are the flags of the command on the path and the program's.
func (cp *completion) flagNames() []string {
	var out []string
	for l := len(cp.path); l >= 0; l-- {
		for _, f := range levelFlags(cp.app, cp.path, l) {
			if vf, ok := f.(cli.VisibleFlag); ok && !vf.IsVisible() {
				continue
			}
			for _, n := range f.Names() {
				if len(n) > 1 {
					out = append(out, "--"+n)
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// subcommands of the command on the path (the program's commands at the
// top), without hidden ones.
func (cp *completion) subcommands() []string {
	cmds := cp.app.Commands
	if len(cp.path) > 0 {
		cmds = cp.path[len(cp.path)-1].Subcommands
	}
	var out []string
	for _, c := range cmds {
		if !c.Hidden {
			out = append(out, c.Name)
		}
	}
	return out
}

// valueOf completes the value of the flag name.
func (cp *completion) valueOf(name string) ([]string, string) {
	kind := flagCompletions[name]
	if name == "label" && (cp.pathName() == "key generate" || cp.pathName() == "token init") {
		kind = "" // a new label
	}
	return cp.kind(kind)
}

// kind completes one kind of word.
func (cp *completion) kind(kind string) ([]string, string) {
	switch kind {
	case ":files", ":dirs":
		return nil, kind
	case "recipient":
		var out []string
		for _, l := range cp.keyLabels() {
			out = append(out, "token:"+l)
		}
		return out, ":files"
	case "key":
		return cp.keyLabels(), ":none"
	case "token":
		return cp.tokenLabels(), ":none"
	case "trusted":
		return cp.trustedNames(), ":none"
	case "type":
		return token.KeyTypes, ":none"
	case "usage":
		return []string{"exchange", "sign"}, ":none"
	case "duration":
		return []string{"none"}, ":none"
	case "format":
		return []string{"tokenseal", "cms"}, ":none"
	case "shell":
		return []string{"bash", "zsh", "fish"}, ":none"
	case "commands":
		cmds := &completion{app: cp.app}
		return cmds.subcommands(), ":none"
	}
	return nil, ":none"
}

// setting is a string setting as the command would see it: typed, else
// from its environment variable, else from the config file.
func (cp *completion) setting(name string) string {
	if v := cp.values[name]; v != "" {
		return v
	}
	if f := cp.flag(name); f != nil {
		if ef, ok := f.(interface{ GetEnvVars() []string }); ok {
			for _, e := range ef.GetEnvVars() {
				if v := os.Getenv(e); v != "" {
					return v
				}
			}
		}
	}
	cfg, err := loadConfig(cp.configPath())
	if err != nil || cfg == nil {
		return ""
	}
	return cfg.values[name]
}

func (cp *completion) configPath() string {
	if v := cp.values["config"]; v != "" {
		return v
	}
	return os.Getenv("TOKENSEAL_CONFIG")
}

// tokenConfig is the token the words select, with no PIN and no prompt.
func (cp *completion) tokenConfig() token.Config {
	cfg := token.Config{Module: cp.setting("module"), Token: cp.setting("token"), Serial: cp.setting("token-serial")}
	var slot uint
	if _, err := fmt.Sscan(cp.setting("token-slot"), &slot); err == nil {
		cfg.Slot = &slot
	}
	return cfg
}

// keyLabels are the labels of the token's public objects (no PIN).
func (cp *completion) keyLabels() []string {
	labels, _ := token.PublicLabels(cp.tokenConfig())
	return labels
}

// tokenLabels are the labels of the initialized tokens of the module.
func (cp *completion) tokenLabels() []string {
	_, infos, err := token.ListTokens(cp.setting("module"))
	if err != nil {
		return nil
	}
	var out []string
	for _, i := range infos {
		if i.Present && i.Initialized && i.Label != "" {
			out = append(out, i.Label)
		}
	}
	return out
}

// trustedNames are the trusted senders of the state directory, if it
// exists (completion never makes one, nor connects to a database).
func (cp *completion) trustedNames() []string {
	dir := cp.setting("state-dir")
	if dir == "" {
		if cp.setting("state-url") != "" {
			return nil
		}
		var err error
		if dir, err = state.DefaultDir(); err != nil {
			return nil
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "state.db")); err != nil {
		return nil
	}
	st, err := backend.Open(context.Background(), dir)
	if err != nil {
		return nil
	}
	defer st.Close()
	ts, err := st.ListTrusted(context.Background())
	if err != nil {
		return nil
	}
	var out []string
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return out
}
