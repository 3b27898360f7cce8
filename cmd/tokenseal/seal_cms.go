package main

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"io"
	"os"
	"strings"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/cms"
	"github.com/tokenseal/tokenseal/token/keyring"
	"github.com/urfave/cli/v2"
)

// sealFormatFlags choose what seal writes: tokenseal's envelope or CMS.
var sealFormatFlags = []cli.Flag{
	&cli.StringFlag{
		Name:    "format",
		Usage:   "write `FORMAT`: tokenseal (this tool's envelope, the default) or cms (RFC 5652 AuthEnvelopedData with AES-256-GCM, which openssl cms and S/MIME clients read; DER, or PEM with --armor)",
		EnvVars: []string{"TOKENSEAL_FORMAT"},
	},
	&cli.BoolFlag{
		Name:  "cms-compat",
		Usage: "with --format cms, write EnvelopedData with AES-256-CBC for readers without AuthEnvelopedData (Windows CryptoAPI, older mail clients); it is NOT authenticated: anyone can change the content undetected unless it is signed and the reader checks",
	},
}

// sealFunc starts writing a sealed message to dst.
type sealFunc func(dst io.Writer) (io.WriteCloser, error)

// sealFormat reads --format (and --cms-compat): true for CMS.
func sealFormat(c *cli.Context) (bool, error) {
	switch f := c.String("format"); f {
	case "", "tokenseal":
		if c.Bool("cms-compat") {
			return false, usageErrorf("--cms-compat goes with --format cms")
		}
		return false, nil
	case "cms":
		return true, nil
	default:
		return false, usageErrorf("unknown --format %q (want tokenseal or cms)", f)
	}
}

// cmsSealer resolves the recipients and the signer for a CMS message, and
// reserves the signer's serial (as for an envelope) last.
func cmsSealer(c *cli.Context, kr *keyring.Keyring, specs []string, signWith string) (sealFunc, error) {
	var rs []*cms.Recipient
	for _, s := range specs {
		r, err := cmsRecipient(kr, s)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	opts := &cms.SealOptions{Armor: c.Bool("armor"), Compat: c.Bool("cms-compat")}
	if signWith != "" {
		cert, err := kr.SignerCertificate(signWith)
		if err != nil {
			return nil, err
		}
		s, err := senderFor(c, kr, signWith)
		if err != nil {
			return nil, err
		}
		opts.Sender = &cms.Sender{Signer: s.Signer, Certificate: cert, StreamID: s.StreamID, Serial: s.Serial, Time: s.Time}
	}
	return func(dst io.Writer) (io.WriteCloser, error) { return cms.Seal(dst, rs, opts) }, nil
}

// cmsRecipient turns one -r value into a CMS recipient: a certificate
// file, named in the message by its issuer and serial number; a public
// key file, or a key on the token (token:LABEL, pkcs11: URI), named by the
// key id as subject key identifier.
func cmsRecipient(kr *keyring.Keyring, spec string) (*cms.Recipient, error) {
	if keyring.IsSpec(spec) {
		return kr.CMSRecipient(spec)
	}
	data, err := os.ReadFile(spec)
	if err != nil {
		return nil, &recipientError{spec, err}
	}
	r, err := parseCMSRecipient(data)
	if err != nil {
		return nil, &recipientError{spec, err}
	}
	return r, nil
}

// parseCMSRecipient reads a recipient file as seal reads it for
// envelopes (envelope.ParseRecipient checks it: the key's kind, a
// certificate's key usage, the key-id and oaep-hash comments of `key
// export`), then makes the CMS recipient of its certificate or key.
func parseCMSRecipient(data []byte) (*cms.Recipient, error) {
	if _, err := envelope.ParseRecipient(data); err != nil {
		return nil, err
	}
	h := oaepComment(data)
	if cert := certificateIn(data); cert != nil {
		return cms.NewCertificateRecipient(cert, h)
	}
	pub, err := envelope.ParsePublicKey(data)
	if err != nil {
		return nil, err
	}
	return cms.NewKeyRecipient(pub, h)
}

// certificateIn returns the X.509 certificate data holds, PEM or DER, or
// nil when it holds something else.
func certificateIn(data []byte) *x509.Certificate {
	der := data
	if b, _ := pem.Decode(data); b != nil {
		der = b.Bytes
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil
	}
	return cert
}

// oaepComment is the OAEP hash named by an "# oaep-hash: sha1" comment
// before the PEM block (a token that undoes OAEP with SHA-1 only, as `key
// export` records it); SHA-256 otherwise.
func oaepComment(data []byte) crypto.Hash {
	head, _, _ := strings.Cut(string(data), "-----BEGIN")
	for _, line := range strings.Split(head, "\n") {
		comment, ok := strings.CutPrefix(strings.TrimSpace(line), "#")
		name, value, _ := strings.Cut(comment, ":")
		if ok && strings.TrimSpace(name) == "oaep-hash" && strings.TrimSpace(value) == "sha1" {
			return crypto.SHA1
		}
	}
	return crypto.SHA256
}
