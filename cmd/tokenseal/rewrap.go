package main

import (
	"encoding/hex"
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
		"                 [--sign-with KEY | --anonymous] [--sender PUBKEY] [--allow-anonymous] [-o OUT] [--armor] [IN]",
	Flags: append([]cli.Flag{
		&cli.StringSliceFlag{Name: "recipient", Aliases: []string{"r"}, Usage: "add `RECIPIENT`: a PEM/DER public key or certificate file, token:LABEL, or a pkcs11: URI (repeatable)"},
		&cli.StringSliceFlag{Name: "recipients-file", Aliases: []string{"R"}, Usage: "add the recipients listed in `FILE` (repeatable)"},
		&cli.StringSliceFlag{Name: "remove-recipient", Usage: "remove the recipient with key id `KEYID` (64 hex digits) or whose public key is in a file (repeatable)"},
		&cli.StringSliceFlag{Name: "sender", Usage: "also trust the original's sender public key in `PUBKEY` for this call (repeatable)"},
		&cli.BoolFlag{Name: "allow-anonymous", Usage: "accept an unsigned original"},
	}, envelopeWriteFlags()...),
	Action: rewrap,
}

func rewrap(c *cli.Context) error {
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
		if opts.Sender, err = senderFor(c, kr, signWith); err != nil {
			return err
		}
	}

	src, err := openInput(c.App.Reader, in)
	if err != nil {
		return err
	}
	defer src.Close()
	// The new envelope is kept back until the original verified: in a
	// temporary file beside OUT, or for stdout in an unlinked spool file.
	var dst receive.Output
	if out != "" {
		af, err := createOutput(out, c.Bool("force"), 0o644)
		if err != nil {
			return err
		}
		dst = &fileOutput{af, c.Bool("force"), c.Bool("sync")}
	} else if dst, err = receive.Spool(c.App.Writer); err != nil {
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
	res, err := rcv.Rewrap(dst, p.Reader(src), opts)
	if err != nil {
		return err
	}
	p.Finish()
	fmt.Fprintf(c.App.ErrWriter, "tokenseal: rewrapped: %d recipient(s) added, %d removed\n", res.Added, res.Removed)
	return nil
}

// parseKeyIDOrFile reads a key id in hex, or the key id of the public key
// in a file.
func parseKeyIDOrFile(s string) (envelope.KeyID, error) {
	if b, err := hex.DecodeString(s); err == nil && len(b) == 32 {
		return envelope.KeyID(b), nil
	}
	if _, err := os.Stat(s); err != nil {
		return envelope.KeyID{}, usageErrorf("--remove-recipient %s: not a 64-hex-digit key id nor a readable file", s)
	}
	pub, err := readPublicKey(s)
	if err != nil {
		return envelope.KeyID{}, &recipientError{s, err}
	}
	return envelope.KeyIDOf(pub)
}
