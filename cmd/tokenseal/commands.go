package main

import (
	"io"
	"log/slog"

	"github.com/urfave/cli/v2"
)

// Global flags.
var (
	flagModule = &cli.StringFlag{
		Name:    "module",
		Usage:   "PKCS#11 module `PATH` (default: probe for SoftHSM2, OpenSC, p11-kit, ykcs11, tpm2-pkcs11, opencryptoki)",
		EnvVars: []string{"TOKENSEAL_MODULE"},
	}
	flagToken = &cli.StringFlag{
		Name:    "token",
		Usage:   "token `LABEL`, or a pkcs11: URI (RFC 7512) with token=, serial=, module-path, pin-source",
		EnvVars: []string{"TOKENSEAL_TOKEN"},
	}
	flagSerial = &cli.StringFlag{
		Name:    "token-serial",
		Usage:   "select the token by its serial `NUMBER` (as `token list` shows it)",
		EnvVars: []string{"TOKENSEAL_TOKEN_SERIAL"},
	}
	flagSlot = &cli.StringFlag{
		Name:    "token-slot",
		Usage:   "select the token by its slot `NUMBER` (as `token list` shows it), e.g. among tokens that share a label or serial",
		EnvVars: []string{"TOKENSEAL_TOKEN_SLOT"},
	}
	flagPINFile = &cli.StringFlag{
		Name:    "pin-file",
		Usage:   "read the user PIN from `FILE` (one trailing newline is stripped); TOKENSEAL_PIN gives it directly",
		EnvVars: []string{"TOKENSEAL_PIN_FILE"},
	}
	flagVerbose = &cli.BoolFlag{
		Name:    "verbose",
		Usage:   "log what happens (module, token, mechanisms) to stderr",
		EnvVars: []string{"TOKENSEAL_VERBOSE"},
	}
)

// commands is the command table. Each action lives in its own file; adding
// a command is one entry here.
func commands() []*cli.Command {
	return []*cli.Command{
		sealCommand,
		openCommand,
		inspectCommand,
		rewrapCommand,
		{
			Name:  "trust",
			Usage: "manage the senders whose signed envelopes open accepts",
			Subcommands: []*cli.Command{
				trustAddCommand,
				trustListCommand,
				trustRemoveCommand,
			},
		},
		{
			Name:  "ledger",
			Usage: "show or prune the replay ledger",
			Subcommands: []*cli.Command{
				ledgerShowCommand,
				ledgerForgetCommand,
			},
		},
		{
			Name:  "token",
			Usage: "list and initialize tokens, change the user PIN",
			Subcommands: []*cli.Command{
				tokenListCommand,
				tokenInitCommand,
				tokenChangePINCommand,
			},
		},
		{
			Name:  "key",
			Usage: "generate, list, export, delete and provision key pairs on the token; issue and store their certificates",
			Subcommands: []*cli.Command{
				keyGenerateCommand,
				keyListCommand,
				keyExportCommand,
				keyDeleteCommand,
				keyProvisionCommand,
				keyCertCommand,
				keyImportCertCommand,
			},
		},
		stateCommand,
		doctorCommand,
		completionCommand,
		manCommand,
	}
}

// newApp builds the CLI around the given streams.
func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:                 "tokenseal",
		Usage:                "envelope encryption to keys held on PKCS#11 tokens",
		Version:              version,
		Reader:               stdin,
		Writer:               stdout,
		ErrWriter:            stderr,
		Flags:                []cli.Flag{flagModule, flagToken, flagSerial, flagSlot, flagPINFile, flagBatch, flagVerbose, flagQuiet, flagConfig},
		Commands:             commands(),
		EnableBashCompletion: true, // hidden --generate-bash-completion; see completion.go
		HideHelpCommand:      false,
		// The library must never call os.Exit: run maps errors to codes.
		ExitErrHandler: func(*cli.Context, error) {},
		Before: func(c *cli.Context) error {
			level := slog.LevelWarn
			if c.Bool("verbose") {
				level = slog.LevelDebug
			}
			slog.SetDefault(slog.New(newLogHandler(c.App.ErrWriter, level)))
			return applyConfig(c)
		},
		Action: groupAction,
	}
	cli.VersionPrinter = printVersion
	app.OnUsageError = onUsageError
	for _, c := range app.Commands {
		setUsageErrors(c)
	}
	withConfig(app.Commands)
	return app
}

func setUsageErrors(c *cli.Command) {
	c.OnUsageError = onUsageError
	if c.Action == nil && len(c.Subcommands) > 0 {
		c.Action = groupAction
	}
	for _, s := range c.Subcommands {
		setUsageErrors(s)
	}
}

func onUsageError(_ *cli.Context, err error, _ bool) error {
	return usageErrorf("%s", err.Error())
}

// groupAction runs for the program or a command group given no known
// subcommand: help when there are no arguments, a usage error otherwise.
func groupAction(c *cli.Context) error {
	if c.Args().Present() {
		return usageErrorf("unknown command %q", c.Args().First())
	}
	if c.Command != nil && c.Command.Name != "" && len(c.Command.Subcommands) > 0 {
		if err := cli.ShowSubcommandHelp(c); err != nil {
			return err
		}
	} else if err := cli.ShowAppHelp(c); err != nil {
		return err
	}
	return usageErrorf("missing command")
}
