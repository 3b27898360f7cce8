package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
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
	UsageText: "tokenseal open [-o OUT] [--sender PUBKEY] [--allow-anonymous] [--allow-unauthenticated] [--allow-unstamped] [--reopen] [IN]\n   tokenseal open -o DIR IN...",
	Flags: append([]cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the plaintext to `OUT` (default stdout); with several inputs, a directory"},
		&cli.BoolFlag{Name: "force", Usage: "overwrite OUT if it exists"},
		&cli.StringSliceFlag{Name: "sender", Usage: "also trust the sender public key in `PUBKEY` (PEM/DER key or certificate) for this call (repeatable)"},
		&cli.BoolFlag{Name: "allow-anonymous", Usage: "accept envelopes without a sender signature (they carry no replay protection)"},
		&cli.StringFlag{Name: "max-age", Value: "7d", Usage: "refuse signed envelopes whose timestamp is older than `DURATION` (90m, 36h, 30d, or none)"},
		&cli.StringFlag{Name: "max-skew", Value: "5m", Usage: "refuse signed envelopes whose timestamp is more than `DURATION` in the future (or none)"},
		&cli.BoolFlag{Name: "reopen", Usage: "open again an envelope this ledger accepted before, if it is the very same one (rereading your archive); others open as usual"},
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
	if c.Uint64("window") == 0 {
		return usageErrorf("--window must be at least 1")
	}
	dst, outs, err := openTarget(c, inputs)
	if err != nil {
		return err
	}
	if f, ok := dst.(*os.File); ok && f != c.App.Writer {
		defer f.Close()
	}
	kr := newKeyring(c)
	defer kr.Close()
	st := &lazyState{c: c}
	defer st.Close()
	// The progress bar counts ciphertext read; none when the plaintext
	// goes to the terminal.
	size := inputsSize(c.App.Reader, inputs)
	var prog *progress
	if !isTTY(dst) {
		prog = newProgress(c, "opening", size)
	}
	defer prog.Stop()
	rcv, err := newReceiver(c, kr, st, progressWatch{prog, size})
	if err != nil {
		return err
	}

	if dst != nil {
		// A reader that stops early (| head) must not use a signed
		// envelope up silently, as it would if SIGPIPE ended the
		// process: caught, the write fails with EPIPE, and the error
		// says the envelope counts as accepted (--reopen opens it again).
		defer catchSIGPIPE()()
		src, err := openInput(c.App.Reader, inputs[0])
		if err != nil {
			return err
		}
		defer src.Close()
		if err := rcv.Stream(inputName(inputs[0]), src, dst); err != nil {
			return err
		}
		prog.Finish()
		return nil
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

// openTarget is where open writes: a stream for one input (standard
// output, or a device or FIFO -o names), else one file per input: -o
// itself, or under a directory -o names, by outputName.
func openTarget(c *cli.Context, inputs []string) (io.Writer, []string, error) {
	out := c.String("output")
	if out == "" || out == "-" {
		if len(inputs) > 1 {
			return nil, nil, usageErrorf("with several inputs, -o must name a directory")
		}
		return c.App.Writer, nil, nil
	}
	dir, err := outputDir(out)
	if err != nil {
		return nil, nil, err
	}
	if len(inputs) > 1 {
		if !dir {
			return nil, nil, usageErrorf("with several inputs, -o must name a directory (end it with / to make one)")
		}
		outs, err := outputPaths(inputs, out)
		return nil, outs, err
	}
	if f, err := outputStream(out); f != nil || err != nil {
		return f, nil, err
	}
	if dir {
		if inputs[0] == "" || inputs[0] == "-" {
			return nil, nil, usageErrorf("-o %s is a directory: with standard input as the input, name the output file", out)
		}
		out = filepath.Join(out, outputName(inputs[0]))
	}
	return nil, []string{out}, nil
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

// reportAll prints a batch's errors in the order of the inputs, each
// naming its input when there are several, with each hint once, and
// returns the first (already printed: it only gives the exit code).
func reportAll(c *cli.Context, inputs []string, errs []error) error {
	var first error
	hinted := map[string]bool{}
	for i, err := range errs {
		if err == nil {
			continue
		}
		if len(inputs) > 1 {
			err = fmt.Errorf("%s: %w", inputs[i], err)
		}
		if first == nil {
			first = err
		}
		printError(c.App.ErrWriter, err, hinted)
	}
	if first == nil {
		return nil
	}
	return &reportedError{first}
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
// .tseal (or .tseal.asc) suffix, or a CMS message's .p7m (what seal -o
// DIR names them), else with .out appended.
func outputName(in string) string {
	b := filepath.Base(in)
	for _, ext := range []string{".tseal.asc", ".tseal", ".p7m"} {
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
	maxAge, err := durationFlag(c, "max-age")
	if err != nil {
		return nil, err
	}
	maxSkew, err := durationFlag(c, "max-skew")
	if err != nil {
		return nil, err
	}
	rcv := receive.New(receive.Config{
		Identities:     []envelope.Identity{kr},
		Store:          st,
		Own:            ownSenders{kr},
		AllowAnonymous: c.Bool("allow-anonymous"),
		MaxAge:         maxAge,
		MaxSkew:        maxSkew,
		Window:         c.Uint64("window"),
		Watch:          w,
		Log:            slog.Default(),
		CMS:            openCMS(c, kr),
		Reopen:         c.Bool("reopen"),
		Reopened: func(name, sender string, first *state.Acceptance) {
			fmt.Fprintf(c.App.ErrWriter, "tokenseal: %s: opened again: serial %d from %s, first accepted at %s\n",
				name, first.Serial, sender, first.At.UTC().Format(time.RFC3339))
		},
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

// catchSIGPIPE makes writes to a closed pipe fail with EPIPE instead of
// ending the process, until the function it returns is called.
func catchSIGPIPE() func() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGPIPE)
	return func() { signal.Stop(ch) }
}
