package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/receive"
	"github.com/urfave/cli/v2"
)

var rewrapCommand = &cli.Command{
	Name:  "rewrap",
	Usage: "add or remove recipients without re-encrypting the payload (key rotation); re-signed with a new serial",
	UsageText: "tokenseal rewrap [-r RECIPIENT ...] [-R FILE] [--remove-recipient KEYID|PUBKEY ...]\n" +
		"                 [--sign-with KEY | --anonymous] [--sender PUBKEY] [--allow-anonymous [--vouch-for-anonymous]]\n" +
		"                 [--again] [--max-age DURATION] [--max-skew DURATION] [-o OUT] [--armor] [IN]",
	Flags: append([]cli.Flag{
		&cli.StringSliceFlag{Name: "recipient", Aliases: []string{"r"}, Usage: "add `RECIPIENT`: a PEM/DER public key or certificate file, token:LABEL, or a pkcs11: URI (repeatable)"},
		&cli.StringSliceFlag{Name: "recipients-file", Aliases: []string{"R"}, Usage: "add the recipients listed in `FILE` (repeatable)"},
		&cli.StringSliceFlag{Name: "remove-recipient", Usage: "remove the recipient with key id `KEYID` (64 hex digits) or whose public key is in a file (repeatable); it must be a recipient of the original"},
		&cli.StringSliceFlag{Name: "sender", Usage: "also trust the original's sender public key in `PUBKEY` for this call (repeatable)"},
		&cli.BoolFlag{Name: "allow-anonymous", Usage: "accept an unsigned original (rewritten unsigned unless --vouch-for-anonymous)"},
		&cli.BoolFlag{Name: "vouch-for-anonymous", Usage: "with --sign-with, sign an unsigned original: the new envelope then vouches under your key, with your serial and timestamp, for content nobody authenticated"},
		&cli.BoolFlag{Name: "again", Usage: "rewrap an original this state already rewrapped (each signed original is rewrapped once by default)"},
		&cli.StringFlag{Name: "max-age", Value: "none", Usage: "refuse a signed original older than `DURATION` (90m, 36h, 30d; default none: rotation is for stored envelopes)"},
		&cli.StringFlag{Name: "max-skew", Value: "5m", Usage: "refuse a signed original dated more than `DURATION` in the future (or none)"},
	}, envelopeWriteFlags()...),
	Action: rewrap,
}

// rewrapFlags refuses the flag combinations that make no sense.
func rewrapFlags(c *cli.Context) error {
	if c.Bool("vouch-for-anonymous") && (c.Bool("anonymous") || !c.Bool("allow-anonymous")) {
		return usageErrorf("--vouch-for-anonymous signs an unsigned original: it needs --allow-anonymous and --sign-with, not --anonymous")
	}
	return nil
}

func rewrap(c *cli.Context) error {
	if err := rewrapFlags(c); err != nil {
		return err
	}
	in, out, signWith, specs, err := envelopeWriteArgs(c, "rewrap")
	if err != nil {
		return err
	}
	if len(specs) == 0 && len(c.StringSlice("remove-recipient")) == 0 {
		return usageErrorf("rewrap needs recipients to add (-r, -R) or to remove (--remove-recipient)")
	}
	var remove []envelope.KeyID
	for _, r := range c.StringSlice("remove-recipient") {
		id, err := parseKeyIDOrFile(r)
		if err != nil {
			return err
		}
		remove = append(remove, id)
	}

	kr := newKeyring(c)
	defer kr.Close()
	add, err := resolveRecipients(kr, specs)
	if err != nil {
		return err
	}
	// The original is checked as open checks it.
	st := &lazyState{c: c}
	defer st.Close()
	rcv, err := newReceiver(c, kr, st, nil)
	if err != nil {
		return err
	}
	opts := envelope.RewrapOptions{Add: add, Remove: remove, Armor: c.Bool("armor")}
	if signWith != "" {
		// The serial is reserved only once the original's header
		// passed every check that can be made before the payload.
		opts.NewSender = func(*envelope.Opened) (*envelope.Sender, error) { return senderFor(c, kr, signWith) }
	}
	maxAge, err := durationFlag(c, "max-age")
	if err != nil {
		return err
	}
	pol := receive.RewrapPolicy{Again: c.Bool("again"), SignAnonymous: c.Bool("vouch-for-anonymous"), MaxAge: maxAge}

	src, err := openInput(c.App.Reader, in)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := rewrapOutput(c, out)
	if err != nil {
		return err
	}
	// The progress bar counts the original read; none when the new
	// envelope goes to the terminal.
	var p *progress
	if out != "" || !isTTY(c.App.Writer) {
		p = newProgress(c, "rewrapping", inputSize(c.App.Reader, in))
	}
	defer p.Stop()
	p.Start()
	res, err := rcv.Rewrap(dst, p.Reader(src), opts, pol)
	if err != nil {
		return rewrapError(err)
	}
	p.Finish()
	fmt.Fprintf(c.App.ErrWriter, "tokenseal: rewrapped: %d recipient(s) added, %d removed\n", res.Added, res.Removed)
	return nil
}

// rewrapOutput is where the new envelope is kept back until the
// original verified: a temporary file beside OUT, or for stdout an
// unlinked spool file.
func rewrapOutput(c *cli.Context, out string) (receive.Output, error) {
	if out == "" {
		return receive.Spool(c.App.Writer)
	}
	af, err := createOutput(out, c.Bool("force"), 0o644)
	if err != nil {
		return nil, err
	}
	return &fileOutput{af, c.Bool("force"), c.Bool("sync")}, nil
}

// rewrapError turns a --remove-recipient the original is not addressed
// to into a usage error (exit 2).
func rewrapError(err error) error {
	var nr *envelope.NotRecipientError
	if errors.As(err, &nr) {
		return usageErrorf("--remove-recipient %s: the original is not addressed to it (no serial was used)", nr.KeyID)
	}
	return err
}

// parseKeyIDOrFile reads a key id in hex, or the key id of the public key
// in a file (whatever the file says the key is for).
func parseKeyIDOrFile(s string) (envelope.KeyID, error) {
	if b, err := hex.DecodeString(s); err == nil && len(b) == 32 {
		return envelope.KeyID(b), nil
	}
	data, err := os.ReadFile(s)
	if err != nil {
		return envelope.KeyID{}, usageErrorf("--remove-recipient %s: not a 64-hex-digit key id nor a readable file", s)
	}
	pub, err := envelope.ParsePublicKey(data)
	if err != nil {
		return envelope.KeyID{}, &recipientError{s, err}
	}
	return envelope.KeyIDOf(pub)
}
