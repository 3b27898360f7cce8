package main

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"time"

	"github.com/tokenseal/tokenseal/envelope/cms"
	"github.com/tokenseal/tokenseal/token"
	"github.com/urfave/cli/v2"
)

var keyCertCommand = &cli.Command{
	Name:  "cert",
	Usage: "issue an X.509 certificate for a key on the token, signed on the token, store it beside the key and print it (CMS senders encrypt to certificates)",
	UsageText: "tokenseal key cert --label LABEL|--id HEX --issuer SIGNING_KEY [--cn NAME] [--email ADDR] [--days N] [-o FILE [--force]]\n" +
		"   tokenseal key cert --self --label LABEL|--id HEX [--cn NAME] [--email ADDR] [--days N] [-o FILE [--force]]",
	Flags: []cli.Flag{
		flagKeyLabel,
		flagKeyID,
		&cli.StringFlag{Name: "issuer", Usage: "sign the certificate of an exchange key with the signing key `KEY` on the token (a label or a pkcs11: URI), which must have a certificate of its own (--self)"},
		&cli.BoolFlag{Name: "self", Usage: "make a signing key's own self-signed certificate (an exchange key cannot sign its own)"},
		&cli.StringFlag{Name: "cn", Usage: "the subject's common `NAME` (default: the key's label)"},
		&cli.StringSliceFlag{Name: "email", Usage: "an e-mail `ADDRESS` for the subject alternative name, where S/MIME clients look (repeatable)"},
		&cli.IntFlag{Name: "days", Value: int(cms.DefaultValidity / (24 * time.Hour)), Usage: "valid for `N` days from now"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the PEM certificate to `FILE` instead of stdout"},
		&cli.BoolFlag{Name: "force", Usage: "overwrite FILE if it exists"},
	},
	Action: keyCert,
}

var keyImportCertCommand = &cli.Command{
	Name:      "import-cert",
	Usage:     "store a certificate (a CA's, say) on the token beside its key, as a CKO_CERTIFICATE with the key's CKA_ID",
	UsageText: "tokenseal key import-cert --label LABEL|--id HEX FILE",
	Flags:     []cli.Flag{flagKeyLabel, flagKeyID},
	Action:    keyImportCert,
}

// certOptions reads --cn, --email and --days; the common name defaults
// to the key's label.
func certOptions(c *cli.Context, k *token.Key) (*cms.CertOptions, error) {
	days := c.Int("days")
	if days < 1 {
		return nil, usageErrorf("--days must be at least 1")
	}
	cn := c.String("cn")
	if cn == "" {
		cn = k.Label
	}
	opts := &cms.CertOptions{EmailAddresses: c.StringSlice("email"), NotAfter: time.Now().Add(time.Duration(days) * 24 * time.Hour)}
	if cn != "" {
		opts.Subject = pkix.Name{CommonName: cn}
	}
	return opts, nil
}

func keyCert(c *cli.Context) error {
	find, err := keyFlag(c, "key cert")
	if err != nil {
		return err
	}
	self, issuer := c.Bool("self"), c.String("issuer")
	switch {
	case c.Args().Present():
		return usageErrorf("key cert takes no arguments")
	case self == (issuer != ""):
		return usageErrorf("key cert needs --issuer SIGNING_KEY (for an exchange key) or --self (for a signing key), not both")
	}
	out := c.String("output")
	if out == "-" {
		out = ""
	}
	// A doomed output costs no signature.
	if out != "" {
		if err := checkOutput(out, c.Bool("force")); err != nil {
			return err
		}
	}
	kr := newKeyring(c)
	defer kr.Close()
	tok, err := kr.Token()
	if err != nil {
		return err
	}
	k, err := find(tok)
	if err != nil {
		return err
	}
	opts, err := certOptions(c, k)
	if err != nil {
		return err
	}
	var cert *x509.Certificate
	if self {
		cert, err = kr.SelfCertify(k, opts)
	} else {
		var ik *token.Key
		if ik, err = kr.Key(issuer); err == nil {
			cert, err = kr.IssueCertificate(k, ik, opts)
		}
	}
	if err != nil {
		return err
	}
	if err := kr.Close(); err != nil {
		return err
	}
	return writePEMOutput(c, out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
}

// writePEMOutput writes a small text output to stdout, or to out, which
// appears whole or not at all and is refused if it exists without --force.
func writePEMOutput(c *cli.Context, out string, data []byte) error {
	if out == "" {
		_, err := c.App.Writer.Write(data)
		return err
	}
	af, err := createOutput(out, c.Bool("force"), 0o644)
	if err != nil {
		return err
	}
	defer af.Abort()
	if _, err := af.Write(data); err != nil {
		return err
	}
	return af.Commit(c.Bool("force"), false)
}

func keyImportCert(c *cli.Context) error {
	find, err := keyFlag(c, "key import-cert")
	if err != nil {
		return err
	}
	if c.NArg() != 1 {
		return usageErrorf("key import-cert takes one certificate file")
	}
	cert, err := readCertificate(c.Args().First())
	if err != nil {
		return err
	}
	tok, err := openToken(c)
	if err != nil {
		return err
	}
	defer tok.Close()
	k, err := find(tok)
	if err != nil {
		return err
	}
	_, stored, err := tok.StoreCertificate(k, cert)
	if err != nil {
		return err
	}
	what := "stored"
	if !stored {
		what = "already on the token:"
	}
	fmt.Fprintf(c.App.Writer, "%s certificate %q (issuer %q, serial %s) for key %s\n", what, cert.Subject, cert.Issuer, hex.EncodeToString(cert.SerialNumber.Bytes()), k)
	return tok.Close()
}

// readCertificate reads one X.509 certificate, PEM or DER.
func readCertificate(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	der := data
	if b, rest := pem.Decode(data); b != nil {
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: PEM block %q is not a certificate", path, b.Type)
		}
		if more, _ := pem.Decode(rest); more != nil {
			return nil, fmt.Errorf("%s: more than one PEM block; give the key's certificate alone", path)
		}
		der = b.Bytes
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%s: not a PEM or DER certificate: %w", path, err)
	}
	return cert, nil
}
