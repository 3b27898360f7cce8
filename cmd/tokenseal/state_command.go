package main

import (
	"context"
	"fmt"

	"github.com/tokenseal/tokenseal/envelope/state/backend"
	"github.com/tokenseal/tokenseal/envelope/state/postgres"
	"github.com/urfave/cli/v2"
)

var stateCommand = &cli.Command{
	Name:  "state",
	Usage: "migrate the state's schema, or copy a host's state into another store (a shared database)",
	Subcommands: []*cli.Command{
		{
			Name:      "migrate",
			Usage:     "bring the state database (--state-dir or --state-url) to this tokenseal's schema version",
			UsageText: "tokenseal state migrate [--state-dir DIR | --state-url URL]",
			Flags:     []cli.Flag{flagStateDir, flagStateURL},
			Action:    stateMigrate,
		},
		{
			Name: "copy",
			Usage: "merge the state in --from (a state directory or database URL) into --to, without losing an accepted serial; " +
				"refused, with nothing written, if the two trust a sender name or key differently",
			UsageText: "tokenseal state copy --from DIR|URL --to DIR|URL",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "from", Usage: "copy from the state directory or database `DIR|URL`"},
				&cli.StringFlag{Name: "to", Usage: "copy into the state directory or database `DIR|URL`"},
			},
			Action: stateCopy,
		},
	},
}

func stateMigrate(c *cli.Context) error {
	if c.Args().Present() {
		return usageErrorf("state migrate takes no arguments")
	}
	spec, err := stateSpec(c)
	if err != nil {
		return err
	}
	from, to, err := backend.Migrate(context.Background(), spec)
	if err != nil {
		return err
	}
	switch {
	case from == to:
		fmt.Fprintf(c.App.Writer, "%s: schema version %d, nothing to do\n", backend.Describe(spec), to)
	case from == 0:
		fmt.Fprintf(c.App.Writer, "%s: created, schema version %d\n", backend.Describe(spec), to)
	default:
		fmt.Fprintf(c.App.Writer, "%s: migrated from schema version %d to %d\n", backend.Describe(spec), from, to)
	}
	return nil
}

func stateCopy(c *cli.Context) error {
	if c.Args().Present() {
		return usageErrorf("state copy takes no arguments: use --from and --to")
	}
	from, to := c.String("from"), c.String("to")
	if from == "" || to == "" {
		return usageErrorf("state copy needs --from DIR|URL and --to DIR|URL")
	}
	for flag, v := range map[string]string{"--from": from, "--to": to} {
		if postgres.HasPassword(v) {
			return passwordError(flag)
		}
	}
	st, err := backend.Copy(context.Background(), from, to)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "copied %s into %s: %d trusted sender(s) added, %d serial counter(s), %d ledger stream(s), %d accepted envelope(s), %d rewrap record(s)\n",
		backend.Describe(from), backend.Describe(to), st.Trusted, st.Counters, st.Streams, st.Accepted, st.Rewraps)
	for _, r := range st.RetiredStreams {
		fmt.Fprintf(c.App.Writer, "signing key %x: %s already has stream %s for it, which continues; stream %d (last serial %d) is retired\n",
			r.KeyID[:8], backend.Describe(to), "its own", r.Stream, r.Last)
	}
	return nil
}
