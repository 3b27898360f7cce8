package main

import (
	"context"

	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/token/keyring"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

var flagStateDir = &cli.StringFlag{
	Name:    "state-dir",
	Usage:   "keep serial counters, trusted senders and the replay ledger in `DIR` (default $XDG_STATE_HOME/tokenseal)",
	EnvVars: []string{"TOKENSEAL_STATE_DIR"},
}

var flagSync = &cli.BoolFlag{
	Name:    "sync",
	Usage:   "flush OUT to stable storage (fsync) before it is moved into place, so a power loss cannot lose it",
	EnvVars: []string{"TOKENSEAL_SYNC"},
}

var sealCommand = &cli.Command{
	Name:      "seal",
	Usage:     "encrypt a file or stream to one or more recipients' public keys (a tokenseal envelope, or CMS with --format cms)",
	UsageText: "tokenseal seal -r RECIPIENT [-r ...] [-R RECIPIENTS_FILE] [--to-self KEY] [--sign-with KEY | --anonymous] [-o OUT] [--armor] [--format tokenseal|cms [--cms-compat]] [IN]",
	Flags: append(append([]cli.Flag{
		&cli.StringSliceFlag{Name: "recipient", Aliases: []string{"r"}, Usage: "seal to `RECIPIENT`: a PEM/DER public key or certificate file, token:LABEL, or a pkcs11: URI (repeatable)"},
		&cli.StringSliceFlag{Name: "recipients-file", Aliases: []string{"R"}, Usage: "read recipients from `FILE`, one a line, # comments (repeatable)"},
		flagToSelf,
		&cli.BoolFlag{Name: "no-to-self", Usage: "do not add the --to-self key (set in the environment or the config file) this time"},
	}, envelopeWriteFlags()...), sealFormatFlags...),
	Action: seal,
}

var flagToSelf = &cli.StringFlag{
	Name:    "to-self",
	Usage:   "also seal to `KEY`, your exchange key on the token (a label or a pkcs11: URI), so that you can open what you seal (as gpg's --encrypt-to)",
	EnvVars: []string{"TOKENSEAL_TO_SELF"},
}

// envelopeWriteFlags are the flags of the commands that write an envelope
// (seal, rewrap): output, armor, signing, state.
func envelopeWriteFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the envelope to `OUT` (default stdout)"},
		&cli.BoolFlag{Name: "armor", Aliases: []string{"a"}, Usage: "write ASCII armor instead of binary"},
		&cli.BoolFlag{Name: "force", Usage: "overwrite OUT if it exists"},
		&cli.StringFlag{Name: "sign-with", Usage: "sign with the signing key `KEY` on the token (a label or a pkcs11: URI)", EnvVars: []string{"TOKENSEAL_SIGN_WITH"}},
		&cli.BoolFlag{Name: "anonymous", Usage: "write the envelope without a sender signature, serial or timestamp (no replay protection)"},
		flagStateDir, flagStateURL,
		flagSync,
	}
}

// envelopeWriteArgs checks what seal and rewrap share: at most one input,
// the signing choice, input and output not the same file, no binary to a
// terminal. It returns the input, the output ("" for stdout), the signing
// key ("" for anonymous) and the recipient specs of -r and -R.
func envelopeWriteArgs(c *cli.Context, verb string) (in, out, signWith string, specs []string, err error) {
	if c.NArg() > 1 {
		return "", "", "", nil, usageErrorf("%s takes at most one input file", verb)
	}
	in, out = c.Args().First(), c.String("output")
	if out == "-" {
		out = ""
	}
	signWith = c.String("sign-with")
	if c.Bool("anonymous") && levelOf(c, "sign-with") == levelFlag {
		return "", "", "", nil, usageErrorf("%s takes --sign-with or --anonymous, not both", verb)
	}
	if c.Bool("anonymous") {
		signWith = ""
	} else if signWith == "" {
		return "", "", "", nil, usageErrorf("no signing key: give --sign-with KEY (or TOKENSEAL_SIGN_WITH), or --anonymous to write an envelope without replay protection")
	}
	specs = c.StringSlice("recipient")
	for _, f := range c.StringSlice("recipients-file") {
		s, err := readRecipientsFile(f)
		if err != nil {
			return "", "", "", nil, err
		}
		specs = append(specs, s...)
	}
	if out != "" && in != "" && in != "-" && sameFile(in, out) {
		return "", "", "", nil, usageErrorf("input and output are the same file")
	}
	if out == "" && !c.Bool("armor") && isTTY(c.App.Writer) {
		return "", "", "", nil, usageErrorf("refusing to write a binary envelope to a terminal: use -o FILE or --armor")
	}
	return in, out, signWith, specs, nil
}

// resolveRecipients resolves every spec (see resolveRecipient).
func resolveRecipients(kr *keyring.Keyring, specs []string) ([]envelope.Recipient, error) {
	var rs []envelope.Recipient
	for _, s := range specs {
		r, err := resolveRecipient(kr, s)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs, nil
}

func seal(c *cli.Context) error {
	in, out, signWith, specs, err := envelopeWriteArgs(c, "seal")
	if err != nil {
		return err
	}
	specs = withToSelf(c, specs)
	if len(specs) == 0 {
		return usageErrorf("seal needs at least one recipient (-r, -R or --to-self)")
	}
	isCMS, err := sealFormat(c)
	if err != nil {
		return err
	}
	stream, out, err := sealTarget(c, in, out, isCMS)
	if err != nil {
		return err
	}
	if stream != nil {
		defer stream.Close()
	}
	kr := newKeyring(c)
	defer kr.Close()
	var open sealFunc
	if isCMS {
		open, err = cmsSealer(c, kr, specs, signWith)
	} else {
		open, err = envelopeSealer(c, kr, specs, signWith)
	}
	if err != nil {
		return err
	}

	src, err := openInput(c.App.Reader, in)
	if err != nil {
		return err
	}
	defer src.Close()

	dst, af, err := sealOutput(c, stream, out)
	if err != nil {
		return err
	}
	if af != nil {
		defer af.Abort()
	}
	w, err := open(dst)
	if err != nil {
		return err
	}
	return writeSealed(c, w, src, inputSize(c.App.Reader, in), dst, af)
}

// writeSealed copies src through the sealing writer w into dst and
// commits af, the output file (nil for stdout). The progress bar
// (stderr on a terminal, big inputs) counts what ReadFrom reads; none
// when the envelope itself goes to the terminal.
func writeSealed(c *cli.Context, w io.WriteCloser, src io.Reader, size int64, dst io.Writer, af *atomicFile) error {
	var p *progress
	if !isTTY(dst) {
		p = newProgress(c, "sealing", size)
	}
	defer p.Stop()
	p.Start()
	// ReadFrom pipelines reading, encryption and writing.
	if _, err := w.(io.ReaderFrom).ReadFrom(p.Reader(src)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	if af != nil {
		if err := af.Commit(c.Bool("force"), c.Bool("sync")); err != nil {
			return err
		}
	}
	p.Finish()
	return nil
}

// withToSelf adds the --to-self key (a label or a pkcs11: URI) to the
// recipients, unless --no-to-self.
func withToSelf(c *cli.Context, specs []string) []string {
	self := c.String("to-self")
	if self == "" || c.Bool("no-to-self") {
		return specs
	}
	if !keyring.IsSpec(self) {
		self = "token:" + self
	}
	return append(specs, self)
}

// sealOutput is where seal writes: the stream sealTarget opened, the
// file out (made on commit), or standard output.
func sealOutput(c *cli.Context, stream *os.File, out string) (io.Writer, *atomicFile, error) {
	switch {
	case stream != nil:
		return stream, nil, nil
	case out != "":
		af, err := createOutput(out, c.Bool("force"), 0o644)
		return af, af, err
	}
	return c.App.Writer, nil, nil
}

// sealTarget resolves -o: a device or FIFO is written directly (the
// stream returned); a directory takes the envelope as IN.tseal (or
// IN.tseal.asc with --armor; a CMS message IN.p7m) inside it; anything
// else is the file.
func sealTarget(c *cli.Context, in, out string, isCMS bool) (*os.File, string, error) {
	if out == "" {
		return nil, "", nil
	}
	f, err := outputStream(out)
	if err != nil || f != nil {
		if f != nil && !c.Bool("armor") && isTTY(f) {
			f.Close()
			return nil, "", usageErrorf("refusing to write a binary envelope to a terminal: use --armor")
		}
		return f, "", err
	}
	dir, err := outputDir(out)
	if err != nil || !dir {
		return nil, out, err
	}
	if in == "" || in == "-" {
		return nil, "", usageErrorf("-o %s is a directory: with standard input as the input, name the output file", out)
	}
	name := filepath.Base(in) + ".tseal"
	switch {
	case isCMS:
		name = filepath.Base(in) + ".p7m"
	case c.Bool("armor"):
		name += ".asc"
	}
	return nil, filepath.Join(out, name), nil
}

// envelopeSealer resolves the recipients and the signer for a tokenseal
// envelope, reserving the signer's serial last.
func envelopeSealer(c *cli.Context, kr *keyring.Keyring, specs []string, signWith string) (sealFunc, error) {
	recipients, err := resolveRecipients(kr, specs)
	if err != nil {
		return nil, err
	}
	opts := &envelope.SealOptions{Armor: c.Bool("armor")}
	if signWith != "" {
		if opts.Sender, err = senderFor(c, kr, signWith); err != nil {
			return nil, err
		}
	}
	return func(dst io.Writer) (io.WriteCloser, error) { return envelope.Seal(dst, recipients, opts) }, nil
}

// senderFor finds the signing key on the token and reserves the next
// serial for it in the state directory, durably, before any byte of the
// envelope exists.
func senderFor(c *cli.Context, kr *keyring.Keyring, spec string) (*envelope.Sender, error) {
	signer, kid, err := kr.Signer(spec)
	if err != nil {
		return nil, err
	}
	st, err := openState(c)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	stream, serial, err := st.NextSerial(context.Background(), kid)
	if err != nil {
		return nil, err
	}
	slog.Debug("serial reserved", "key", spec, "stream", stream, "serial", serial)
	return &envelope.Sender{Signer: signer, StreamID: stream, Serial: serial, Time: time.Now()}, nil
}

// isTTY reports whether v is an *os.File on a terminal.
func isTTY(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
