package main

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/state"
	"github.com/urfave/cli/v2"
)

var openCommand = &cli.Command{
	Name:      "open",
	Usage:     "decrypt envelopes addressed to a key on the token, verifying sender, freshness and replay",
	UsageText: "tokenseal open [-o OUT] [--sender PUBKEY] [--allow-anonymous] [IN]\n   tokenseal open -o DIR IN...",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the plaintext to `OUT` (default stdout); with several inputs, a directory"},
		&cli.BoolFlag{Name: "force", Usage: "overwrite OUT if it exists"},
		&cli.StringSliceFlag{Name: "sender", Usage: "also trust the sender public key in `PUBKEY` (PEM/DER key or certificate) for this call (repeatable)"},
		&cli.BoolFlag{Name: "allow-anonymous", Usage: "accept envelopes without a sender signature (they carry no replay protection)"},
		&cli.DurationFlag{Name: "max-age", Value: 7 * 24 * time.Hour, Usage: "refuse signed envelopes whose timestamp is older than `DURATION`"},
		&cli.DurationFlag{Name: "max-skew", Value: 5 * time.Minute, Usage: "refuse signed envelopes whose timestamp is more than `DURATION` in the future"},
		&cli.Uint64Flag{Name: "window", Value: state.DefaultWindow, Usage: "width of the anti-replay window in serial `NUMBERS`"},
		flagStateDir,
		flagSync,
	},
	Action: openAction,
}

// opener holds what one open invocation shares across its inputs: one
// token login, one state database.
type opener struct {
	c      *cli.Context
	lt     *lazyToken
	ids    []envelope.Identity
	st     *state.Store
	extra  map[envelope.KeyID]crypto.PublicKey
	names  map[envelope.KeyID]string
	opts   *envelope.OpenOptions
	force  bool
	window uint64
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
	o := &opener{
		c:      c,
		lt:     &lazyToken{c: c},
		extra:  map[envelope.KeyID]crypto.PublicKey{},
		names:  map[envelope.KeyID]string{},
		force:  c.Bool("force"),
		window: c.Uint64("window"),
	}
	if o.window == 0 {
		return usageErrorf("--window must be at least 1")
	}
	defer o.lt.Close()
	defer func() {
		if o.st != nil {
			o.st.Close()
		}
	}()
	o.ids = []envelope.Identity{newTokenIdentity(o.lt)}
	for _, f := range c.StringSlice("sender") {
		pub, err := readPublicKey(f)
		if err != nil {
			return fmt.Errorf("sender %s: %w", f, err)
		}
		id, err := envelope.KeyIDOf(pub)
		if err != nil {
			return fmt.Errorf("sender %s: %w", f, err)
		}
		o.extra[id] = pub
		o.names[id] = f
	}
	o.opts = &envelope.OpenOptions{RefuseAnonymous: !c.Bool("allow-anonymous"), Senders: o.sender}

	var first error
	for _, in := range inputs {
		dst := out
		if len(inputs) > 1 {
			dst = filepath.Join(out, outputName(in))
		}
		err := o.openOne(in, dst)
		if err != nil && len(inputs) > 1 {
			err = fmt.Errorf("%s: %w", in, err)
			if first != nil {
				report(c.App.ErrWriter, err)
			}
		}
		if err != nil && first == nil {
			first = err
		}
	}
	return first
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

func (o *opener) store() (*state.Store, error) {
	if o.st == nil {
		st, err := openState(o.c)
		if err != nil {
			return nil, err
		}
		o.st = st
	}
	return o.st, nil
}

// sender resolves a signing key: --sender keys first, then the trusted
// senders in the state directory.
func (o *opener) sender(id envelope.KeyID) (crypto.PublicKey, error) {
	if pub, ok := o.extra[id]; ok {
		return pub, nil
	}
	st, err := o.store()
	if err != nil {
		return nil, err
	}
	t, err := st.LookupTrusted(context.Background(), id)
	if errors.Is(err, state.ErrNotFound) {
		return nil, envelope.ErrUnknownSender
	}
	if err != nil {
		return nil, err
	}
	o.names[id] = t.Name
	return t.Public, nil
}

// accept applies the freshness rule and records the serial in the ledger,
// as one transaction. It runs only after every chunk and the signature
// verified; a refusal changes nothing.
func (o *opener) accept(info *envelope.SenderInfo) error {
	now := time.Now()
	ts := time.UnixMilli(int64(info.Timestamp))
	if err := state.CheckFreshness(ts, now, o.c.Duration("max-age"), o.c.Duration("max-skew")); err != nil {
		return err
	}
	st, err := o.store()
	if err != nil {
		return err
	}
	name := o.names[envelope.KeyID(info.KeyID)]
	if name == "" {
		name = envelope.KeyID(info.KeyID).String()
	}
	return st.Accept(context.Background(), info.KeyID, info.StreamID, info.Serial, o.window, name, now)
}

func (o *opener) openOne(in, out string) error {
	if out != "" && in != "" && in != "-" && sameFile(in, out) {
		return usageErrorf("input and output are the same file")
	}
	if out != "" && !o.force {
		if _, err := os.Lstat(out); err == nil {
			return &outputExistsError{out}
		}
	}
	src, err := openInput(o.c.App.Reader, in)
	if err != nil {
		return err
	}
	defer src.Close()
	if out == "" {
		return o.toStdout(src)
	}
	r, err := envelope.Open(src, o.ids, o.opts)
	if err != nil {
		return err
	}
	af, err := createOutput(out, o.force, 0o600)
	if err != nil {
		return err
	}
	defer af.Abort()
	if _, err := r.WriteTo(af); err != nil {
		return err
	}
	if o.c.Bool("sync") {
		// Data on stable storage before the ledger moves.
		if err := af.Sync(); err != nil {
			return err
		}
	}
	if r.Sender != nil {
		if err := o.accept(r.Sender); err != nil {
			return err
		}
	}
	// If the process dies between the ledger commit and this rename the
	// envelope counts as accepted and its plaintext is lost: a resend is
	// refused as a replay. That is the side that never accepts twice.
	return af.Commit(o.force, o.c.Bool("sync"))
}

// toStdout opens to standard output. An anonymous envelope streams: each
// 64 KiB chunk is written once it authenticated, and a failure ends the
// output early with a non-zero exit. A signed envelope is first verified
// whole and recorded in the ledger, reading the input into a private,
// already-unlinked spool file (ciphertext only), then decrypted from the
// spool: no plaintext is released before the envelope is accepted.
func (o *opener) toStdout(src io.Reader) error {
	spool, err := os.CreateTemp("", "tokenseal-spool-*")
	if err != nil {
		return fmt.Errorf("creating spool file: %w", err)
	}
	os.Remove(spool.Name())
	defer spool.Close()

	r, err := envelope.Open(io.TeeReader(src, spool), o.ids, o.opts)
	if err != nil {
		return err
	}
	if r.Sender == nil {
		// Anonymous (allowed): stream directly, no spool needed.
		spool.Close()
		_, err := r.WriteTo(o.c.App.Writer)
		return err
	}
	if _, err := r.WriteTo(io.Discard); err != nil {
		return err
	}
	if err := o.accept(r.Sender); err != nil {
		return err
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("reading spool file: %w", err)
	}
	r2, err := envelope.Open(spool, o.ids, o.opts)
	if err != nil {
		return err
	}
	_, err = r2.WriteTo(o.c.App.Writer)
	return err
}
