package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestManPage checks that the generated manual page names every visible
// command and subcommand (as a section of its own), every flag, and every
// environment variable a flag reads.
func TestManPage(t *testing.T) {
	app := newApp(nil, &bytes.Buffer{}, &bytes.Buffer{})
	page, err := manPage(app)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(page, ".nh\n.TH tokenseal 1") {
		t.Errorf("page does not start as a section 1 page:\n%.200s", page)
	}
	// A command is a section (.SH), a subcommand a subsection (.SS); a
	// third level would be a bold paragraph.
	heading := func(name string) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^(\.S[HS] |\\fB)` + regexp.QuoteMeta(name) + `(\\fP)?(, .*)?$`)
	}
	flagName := func(f cli.Flag) string {
		n := f.Names()[0]
		if len(n) == 1 {
			return "-" + n
		}
		return "--" + n
	}
	var walk func(path string, cmds []*cli.Command)
	walk = func(path string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Hidden {
				continue
			}
			p := path + " " + c.Name
			if !heading(c.Name).MatchString(page) {
				t.Errorf("man page has no section for %s", p)
			}
			for _, f := range c.Flags {
				if !strings.Contains(page, flagName(f)) {
					t.Errorf("man page does not mention %s %s", p, flagName(f))
				}
			}
			walk(p, c.Subcommands)
		}
	}
	walk("tokenseal", app.Commands)
	for _, f := range app.Flags {
		if !strings.Contains(page, flagName(f)) {
			t.Errorf("man page does not mention the global flag %s", flagName(f))
		}
		if ef, ok := f.(interface{ GetEnvVars() []string }); ok {
			for _, e := range ef.GetEnvVars() {
				if !strings.Contains(page, e) {
					t.Errorf("man page does not mention %s", e)
				}
			}
		}
	}
	for _, s := range []string{".SH FILES", ".SH ENVIRONMENT", ".SH EXIT STATUS", "TOKENSEAL_PIN", "TOKENSEAL_STATE_DIR", "TOKENSEAL_SIGN_WITH"} {
		if !strings.Contains(page, s) {
			t.Errorf("man page lacks %q", s)
		}
	}
}
