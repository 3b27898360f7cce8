package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/cpuguy83/go-md2man/v2/md2man"
	"github.com/urfave/cli/v2"
)

// manCommand prints the manual page (`make man` writes it to
// man/tokenseal.1, `make install` installs it): `tokenseal man | man -l -`
// reads it without installing anything.
var manCommand = &cli.Command{
	Name:  "man",
	Usage: "print the tokenseal(1) manual page (read it with: tokenseal man | man -l -)",
	Action: func(c *cli.Context) error {
		page, err := manPage(c.App)
		if err != nil {
			return err
		}
		_, err = fmt.Fprint(c.App.Writer, page)
		return err
	},
}

// manPage renders the app as a section 1 manual page: urfave/cli's
// markdown for the app (what ToMan renders), with the sections the command
// definitions cannot give appended (files, environment collected from the
// flags, exit status), through the same md2man renderer.
func manPage(app *cli.App) (string, error) {
	if app.Description == "" {
		app.Description = manDescription
	}
	md, err := app.ToMarkdown()
	if err != nil {
		return "", err
	}
	md = withoutEnvValues(md, app.Flags, app.Commands)
	page := "% " + app.Name + " 1\n\n" + md + "\n" + manExtra(app)
	return string(md2man.Render([]byte(page))), nil
}

// withoutEnvValues drops from md the "(default: VALUE)" that urfave/cli
// writes for a flag without a default from the value its environment
// variable gave this run: the page is the same for everyone, and a
// TOKENSEAL_STATE_URL may hold a password.
func withoutEnvValues(md string, flags []cli.Flag, cmds []*cli.Command) string {
	for _, f := range flags {
		if d, ok := f.(cli.DocGenerationFlag); ok && d.TakesValue() && d.GetDefaultText() == "" && d.GetValue() != "" {
			md = strings.ReplaceAll(md, " (default: "+d.GetValue()+")", "")
		}
	}
	for _, c := range cmds {
		md = withoutEnvValues(md, c.Flags, c.Subcommands)
	}
	return md
}

const manDescription = `tokenseal seals files to public keys whose private keys live on PKCS#11
tokens (smart cards, YubiKeys, HSMs, SoftHSM2), and opens them on the token:
the private key never leaves it. Signed envelopes carry the sender's key id,
a serial number and a timestamp; open accepts them only from trusted senders
and refuses replays.

Settings are taken, first found wins, from the command line, the
environment, the config file (see FILES), then the defaults.`

func manExtra(app *cli.App) string {
	var b strings.Builder
	b.WriteString(`# FILES

**$XDG_CONFIG_HOME/tokenseal/config** (else **~/.config/tokenseal/config**), or **--config FILE**:
optional defaults, below the command line and the environment, one **key = value** a line, **#** comments. Keys: ` + strings.Join(configKeys, ", ") + `.
Relative paths are relative to the file. A PIN is never accepted there; use **pin-file**.

**$XDG_STATE_HOME/tokenseal** (else **~/.local/state/tokenseal**), or **--state-dir DIR**:
serial counters, trusted senders and the replay ledger.

# ENVIRONMENT
`)
	type env struct{ name, usage string }
	seen := map[string]bool{}
	var envs []env
	add := func(flags []cli.Flag) {
		for _, f := range flags {
			ef, ok := f.(interface {
				GetEnvVars() []string
				GetUsage() string
			})
			if !ok {
				continue
			}
			for _, e := range ef.GetEnvVars() {
				if !seen[e] {
					seen[e] = true
					envs = append(envs, env{e, ef.GetUsage()})
				}
			}
		}
	}
	var walk func([]*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			add(c.Flags)
			walk(c.Subcommands)
		}
	}
	add(app.Flags)
	walk(app.Commands)
	for _, e := range []env{
		{"TOKENSEAL_PIN", "the user PIN itself (after --pin-file; never a flag, so that it stays out of ps and shell history)"},
		{"TOKENSEAL_SO_PIN", "the security officer PIN for token init (after --so-pin-file)"},
		{"TOKENSEAL_CPUPROFILE", "write a CPU profile to this file, for go tool pprof"},
	} {
		if !seen[e.name] {
			seen[e.name] = true
			envs = append(envs, e)
		}
	}
	sort.Slice(envs, func(i, j int) bool { return envs[i].name < envs[j].name })
	for _, e := range envs {
		fmt.Fprintf(&b, "\n**%s**: %s\n", e.name, strings.ReplaceAll(e.usage, "`", ""))
	}
	b.WriteString(`
# EXIT STATUS

**0** success; **1** other error; **2** usage error; **3** token error (module,
token, login, key); **4** envelope rejected (malformed, tampered, not
addressed to this token, bad or untrusted signature); **5** replay rejected.
` + manExamples)
	return b.String()
}

const manExamples = `
# EXAMPLES

Once: give your public key to the people who send you files, and trust theirs.

    tokenseal key export --label alice -o alice.pem
    tokenseal trust add bob bob-sign.pem

Seal a file to bob, signed with your key (sign-with in the config file), and to yourself:

    tokenseal seal -r bob.pem --to-self alice report.pdf > report.pdf.tseal

Open what bob sent, one file to standard output, or many into a directory (one PIN prompt):

    tokenseal open from-bob.tseal > notes.txt
    tokenseal open -o inbox/ *.tseal

Read a file from your archive again (an envelope the ledger accepted before; that same envelope only):

    tokenseal open --reopen old.tseal

Who can open it and who signed it, without a token or PIN:

    tokenseal inspect q3.tseal

Keys, on a token you set up once:

    tokenseal key generate --label alice --type p256 --usage exchange
    tokenseal key generate --label alice-sign --type p256 --usage sign
    tokenseal key list

# SEE ALSO

**gpg**(1), **age**(1), **openssl-cms**(1), **pkcs11-tool**(1), **softhsm2-util**(1), **p11tool**(1).
The README and the pages under docs/ in tokenseal's source: daily use, every flag and JSON field,
tokens, doctor and provisioning, the envelope format (envelope/FORMAT.md), guarantees and limits.
`
