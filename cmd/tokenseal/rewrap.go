package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/tokenseal/tokenseal/envelope"
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
	o, err := newOpener(c, kr)
	if err != nil {
		return err
	}
	defer o.close()
	opts := &envelope.RewrapOptions{
		Open:   o.opts,
		Add:    add,
		Remove: remove,
		Armor:  c.Bool("armor"),
	}
	if signWith != "" {
		sender, err := senderFor(c, kr, signWith)
		if err != nil {
			return err
		}
		opts.Sender = sender
	}

	src, err := openInput(c.App.Reader, in)
	if err != nil {
		return err
	}
	defer src.Close()
	// The new envelope is written only once the original verified: to a
	// temporary file beside OUT, or for stdout to an unlinked spool file
	// copied out afterwards.
	var dst io.Writer
	var af *atomicFile
	var spool *os.File
	if out != "" {
		if af, err = createOutput(out, c.Bool("force"), 0o644); err != nil {
			return err
		}
		defer af.Abort()
		dst = af
	} else {
		if spool, err = newSpool(); err != nil {
			return err
		}
		defer spool.Close()
		dst = spool
	}
	// The progress bar counts the original read; none when the new
	// envelope goes to the terminal.
	var p *progress
	if out != "" || !isTTY(c.App.Writer) {
		p = newProgress(c, "rewrapping", inputSize(c.App.Reader, in))
	}
	defer p.Stop()
	p.Start()
	res, err := envelope.Rewrap(dst, p.Reader(src), o.ids, opts)
	if err != nil {
		return err
	}
	if af != nil {
		if err := af.Commit(c.Bool("force"), c.Bool("sync")); err != nil {
			return err
		}
	}
	if spool != nil {
		if _, err := spool.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("reading spool file: %w", err)
		}
		if _, err := io.Copy(c.App.Writer, spool); err != nil {
			return err
		}
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
