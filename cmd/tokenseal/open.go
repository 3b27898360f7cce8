package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/receive"
	"github.com/tokenseal/tokenseal/envelope/state"
	"github.com/tokenseal/tokenseal/token/keyring"
	"github.com/urfave/cli/v2"
)

var openCommand = &cli.Command{
	Name:      "open",
	Usage:     "decrypt envelopes (and CMS messages) addressed to a key on the token, verifying sender, freshness and replay",
	UsageText: "tokenseal open [-o OUT] [--sender PUBKEY] [--allow-anonymous] [--allow-unauthenticated] [--allow-unstamped] [IN]\n   tokenseal open -o DIR IN...",
	Flags: append([]cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the plaintext to `OUT` (default stdout); with several inputs, a directory"},
		&cli.BoolFlag{Name: "force", Usage: "overwrite OUT if it exists"},
		&cli.StringSliceFlag{Name: "sender", Usage: "also trust the sender public key in `PUBKEY` (PEM/DER key or certificate) for this call (repeatable)"},
		&cli.BoolFlag{Name: "allow-anonymous", Usage: "accept envelopes without a sender signature (they carry no replay protection)"},
		&cli.DurationFlag{Name: "max-age", Value: 7 * 24 * time.Hour, Usage: "refuse signed envelopes whose timestamp is older than `DURATION`"},
		&cli.DurationFlag{Name: "max-skew", Value: 5 * time.Minute, Usage: "refuse signed envelopes whose timestamp is more than `DURATION` in the future"},
		&cli.Uint64Flag{Name: "window", Value: state.DefaultWindow, Usage: "width of the anti-replay window in serial `NUMBERS`"},
		flagStateDir,
		flagStateURL,
		flagSync,
	}, openCMSFlags...),
	Action: openAction,
}

func openAction(c *cli.Context) error {
	inputs := c.Args().Slice()
	if len(inputs) == 0 {
		inputs = []string{""}
	}
	out := c.String("output")
	if out == "-" {
		out = ""
	}
	if len(inputs) > 1 {
		fi, err := os.Stat(out)
		if out == "" || err != nil || !fi.IsDir() {
			return usageErrorf("with several inputs, -o must name an existing directory")
		}
	}
	if c.Uint64("window") == 0 {
		return usageErrorf("--window must be at least 1")
	}
	kr := newKeyring(c)
	defer kr.Close()
	st := &lazyState{c: c}
	defer st.Close()
	// The progress bar counts ciphertext read; none when the plaintext
	// goes to the terminal.
	size := inputsSize(c.App.Reader, inputs)
	var prog *progress
	if out != "" || !isTTY(c.App.Writer) {
		prog = newProgress(c, "opening", size)
	}
	defer prog.Stop()
	rcv, err := newReceiver(c, kr, st, progressWatch{prog, size})
	if err != nil {
		return err
	}

	if out == "" {
		src, err := openInput(c.App.Reader, inputs[0])
		if err != nil {
			return err
		}
		defer src.Close()
		if err := rcv.Stream(inputName(inputs[0]), src, c.App.Writer); err != nil {
			return err
		}
		prog.Finish()
		return nil
	}
	outs, err := outputPaths(inputs, out)
	if err != nil {
		return err
	}
	errs := rcv.Batch(batchItems(c, inputs, outs))
	// The bar ends before any error is reported.
	if slices.ContainsFunc(errs, func(err error) bool { return err != nil }) {
		prog.Stop()
	} else {
		prog.Finish()
	}
	return reportAll(c, inputs, errs)
}

// outputPaths names the output of each input: out itself for one input,
// else out/NAME. Inputs that would share an output, and non-regular
// inputs in a batch, are refused before anything is opened.
func outputPaths(inputs []string, out string) ([]string, error) {
	if len(inputs) == 1 {
		return []string{out}, nil
	}
	outs := make([]string, len(inputs))
	seen := map[string]string{}
	for i, in := range inputs {
		// A batch reads each input twice (for the serial order, then to
		// open it): a FIFO or a device would block or give other bytes.
		if fi, err := os.Stat(in); err == nil && !fi.Mode().IsRegular() {
			return nil, usageErrorf("input %s is not a regular file; with several inputs each must be one (open it on its own)", in)
		}
		outs[i] = filepath.Join(out, outputName(in))
		// The second of two inputs with one output name would be
		// recorded in the ledger and then fail (or, with --force,
		// replace the first) at the final path, its serial burned and a
		// plaintext lost.
		if prev, ok := seen[outs[i]]; ok {
			return nil, usageErrorf("inputs %s and %s would both be written to %s", prev, in, outs[i])
		}
		seen[outs[i]] = in
	}
	return outs, nil
}

// batchItems are the inputs and their output files for Batch.
func batchItems(c *cli.Context, inputs, outs []string) []receive.Item {
	items := make([]receive.Item, len(inputs))
	force, sync := c.Bool("force"), c.Bool("sync")
	for i, in := range inputs {
		out := outs[i]
		items[i] = receive.Item{
			Name: inputName(in),
			Once: in == "" || in == "-",
			Open: func() (io.ReadCloser, error) {
				if in != "" && in != "-" && sameFile(in, out) {
					return nil, usageErrorf("input and output are the same file")
				}
				// A doomed output costs nothing: checked before the
				// input is read.
				if err := checkOutput(out, force); err != nil {
					return nil, err
				}
				return openInput(c.App.Reader, in)
			},
			Create: func() (receive.Output, error) {
				af, err := createOutput(out, force, 0o600)
				if err != nil {
					return nil, err
				}
				return &fileOutput{af, force, sync}, nil
			},
		}
	}
	return items
}

// reportAll returns the first error of a batch, naming its input when
// there are several, and reports the others.
func reportAll(c *cli.Context, inputs []string, errs []error) error {
	var first error
	for i, err := range errs {
		if err == nil {
			continue
		}
		if len(inputs) > 1 {
			err = fmt.Errorf("%s: %w", inputs[i], err)
		}
		if first == nil {
			first = err
		} else {
			report(c.App.ErrWriter, err)
		}
	}
	return first
}

func inputName(in string) string {
	if in == "" {
		return "-"
	}
	return in
}

// inputsSize is the size of the inputs together, or -1 when one of them
// is not a regular file.
func inputsSize(stdin io.Reader, inputs []string) int64 {
	var total int64
	for _, in := range inputs {
		n := inputSize(stdin, in)
		if n < 0 {
			return -1
		}
		total += n
	}
	return total
}

// outputName is the plaintext's name for an envelope file: without a
// .tseal (or .tseal.asc) suffix, else with .out appended.
func outputName(in string) string {
	b := filepath.Base(in)
	for _, ext := range []string{".tseal.asc", ".tseal"} {
		if s, ok := strings.CutSuffix(b, ext); ok && s != "" {
			return s
		}
	}
	return b + ".out"
}

// newReceiver sets up what opening shares across inputs (open, and
// rewrap for its original): the token identity, the --sender keys, the
// state directory's trusted senders and ledger, the limits, and the
// anonymous rule (refused unless --allow-anonymous).
func newReceiver(c *cli.Context, kr *keyring.Keyring, st *lazyState, w receive.Watcher) (*receive.Receiver, error) {
	rcv := receive.New(receive.Config{
		Identities:     []envelope.Identity{kr},
		Store:          st,
		AllowAnonymous: c.Bool("allow-anonymous"),
		MaxAge:         c.Duration("max-age"),
		MaxSkew:        c.Duration("max-skew"),
		Window:         c.Uint64("window"),
		Watch:          w,
		Log:            slog.Default(),
		CMS:            openCMS(c, kr),
	})
	for _, f := range c.StringSlice("sender") {
		pub, err := readPublicKey(f)
		if err == nil {
			err = rcv.Trust(f, pub)
		}
		if err != nil {
			return nil, fmt.Errorf("sender %s: %w", f, err)
		}
	}
	return rcv, nil
}

// fileOutput is an atomicFile as a receive.Output: with --sync its data
// reaches stable storage before the ledger moves.
type fileOutput struct {
	*atomicFile
	force, sync bool
}

func (f *fileOutput) Sync() error {
	if f.sync {
		return f.atomicFile.Sync()
	}
	return nil
}

func (f *fileOutput) Commit() error { return f.atomicFile.Commit(f.force, f.sync) }

// progressWatch shows a receiver's reading on the progress bar.
type progressWatch struct {
	p    *progress
	size int64
}

func (w progressWatch) Reader(r io.Reader) io.Reader { return w.p.Reader(r) }
func (w progressWatch) Started()                     { w.p.Start() }
func (w progressWatch) Spooled()                     { w.p.AddTotal(w.size) } // read twice
