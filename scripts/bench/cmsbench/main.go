// Command cmsbench seals and opens CMS files with envelope/cms and
// software keys, for scripts/bench-cms.sh: the library's file-to-file
// throughput and memory beside `openssl cms`, before the CLI speaks CMS.
//
//	cmsbench seal -r CERT.pem [-sign KEY.pem -signcert CERT.pem] [-compat] [-armor] IN OUT
//	cmsbench open -k KEY.pem [-c CERT.pem] [-trust CERT.pem] [-stdout] IN OUT
//
// open writes OUT only after the message verified (a temporary file in
// OUT's directory, renamed); with -stdout it verifies into a ciphertext
// spool first and then decrypts to OUT as it goes (the standard-output
// path).
package main

import (
	"bufio"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/cms"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "seal":
		err = seal(os.Args[2:])
	case "open":
		err = open(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cmsbench: error:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: cmsbench seal|open [flags] IN OUT")
	os.Exit(2)
}

func seal(args []string) error {
	fs := flag.NewFlagSet("seal", flag.ExitOnError)
	rcpt := fs.String("r", "", "recipient certificate (PEM)")
	signKey := fs.String("sign", "", "signing key (PEM PKCS#8)")
	signCert := fs.String("signcert", "", "signing key's certificate (PEM)")
	compat := fs.Bool("compat", false, "EnvelopedData with AES-256-CBC")
	armor := fs.Bool("armor", false, "PEM output")
	fs.Parse(args)
	if fs.NArg() != 2 {
		usage()
	}
	cert, err := readCert(*rcpt)
	if err != nil {
		return err
	}
	r, err := cms.NewCertificateRecipient(cert, 0)
	if err != nil {
		return err
	}
	opts := &cms.SealOptions{Compat: *compat, Armor: *armor}
	if *signKey != "" {
		k, err := readKey(*signKey)
		if err != nil {
			return err
		}
		opts.Sender = &cms.Sender{Signer: k, StreamID: 1, Serial: uint64(time.Now().UnixNano()), Time: time.Now()}
		if *signCert != "" {
			if opts.Sender.Certificate, err = readCert(*signCert); err != nil {
				return err
			}
		}
	}
	in, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(fs.Arg(1))
	if err != nil {
		return err
	}
	w, err := cms.Seal(out, []*cms.Recipient{r}, opts)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, bufio.NewReaderSize(in, 1<<20)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return out.Close()
}

func open(args []string) error {
	fs := flag.NewFlagSet("open", flag.ExitOnError)
	keyPath := fs.String("k", "", "private key (PEM PKCS#8)")
	certPath := fs.String("c", "", "the key's certificate (PEM), to match issuerAndSerialNumber")
	trust := fs.String("trust", "", "trusted sender certificate (PEM)")
	stdout := fs.Bool("stdout", false, "verify into a ciphertext spool, then decrypt as it goes")
	fs.Parse(args)
	if fs.NArg() != 2 {
		usage()
	}
	priv, err := readKey(*keyPath)
	if err != nil {
		return err
	}
	k, err := cms.NewSoftwareKey(priv)
	if err != nil {
		return err
	}
	var certs []*x509.Certificate
	if *certPath != "" {
		c, err := readCert(*certPath)
		if err != nil {
			return err
		}
		certs = append(certs, c)
	}
	id, err := cms.NewIdentity(k, certs...)
	if err != nil {
		return err
	}
	opts := &cms.OpenOptions{AllowUnsigned: *trust == "", AllowUnauthenticated: true}
	if *trust != "" {
		c, err := readCert(*trust)
		if err != nil {
			return err
		}
		opts.Senders = senders{c.PublicKey}
	}
	in, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer in.Close()
	d, err := cms.Open(in, cms.Identities{id}, opts)
	if err != nil {
		return err
	}
	if *stdout {
		return viaSpool(d, fs.Arg(1))
	}
	out, err := newPending(fs.Arg(1))
	if err != nil {
		return err
	}
	if _, err := d.DecryptTo(out); err != nil {
		return err
	}
	return out.commit()
}

// viaSpool is the standard-output path: ciphertext to an unlinked
// temporary file, verified, then decrypted to out.
func viaSpool(d *cms.Decrypter, outPath string) error {
	spool, err := os.CreateTemp(filepath.Dir(outPath), ".spool-*")
	if err != nil {
		return err
	}
	os.Remove(spool.Name())
	defer spool.Close()
	bw := bufio.NewWriterSize(spool, 1<<20)
	v, err := d.VerifyTo(bw)
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return err
	}
	out, err := os.Create(outPath)
	if err != nil {
		return err
	}
	if err := v.DecryptFrom(bufio.NewReaderSize(spool, 1<<20), out); err != nil {
		return err
	}
	return out.Close()
}

// pending is a cms.PendingOutput: a temporary file renamed into place.
type pending struct {
	f    *os.File
	path string
}

func newPending(path string) (*pending, error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".pending-*")
	return &pending{f: f, path: path}, err
}

func (p *pending) Write(b []byte) (int, error) { return p.f.Write(b) }
func (p *pending) Discard() error {
	p.f.Close()
	return os.Remove(p.f.Name())
}
func (p *pending) commit() error {
	if err := p.f.Close(); err != nil {
		return err
	}
	return os.Rename(p.f.Name(), p.path)
}

type senders []crypto.PublicKey

func (s senders) SenderKey(id cms.KeyID) (crypto.PublicKey, error) {
	for _, p := range s {
		if got, _ := envelope.KeyIDOf(p); got == id {
			return p, nil
		}
	}
	return nil, nil
}

func readCert(path string) (*x509.Certificate, error) {
	b, err := readPEM(path)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(b)
}

func readKey(path string) (crypto.Signer, error) {
	b, err := readPEM(path)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(b)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("not a signing key")
	}
	return s, nil
}

func readPEM(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	return block.Bytes, nil
}
