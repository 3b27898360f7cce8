package cms

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// OpenOptions change what Open accepts. The zero value accepts only
// signed AuthEnvelopedData, and needs Senders for that.
type OpenOptions struct {
	// AllowUnauthenticated accepts EnvelopedData (AES-CBC): its content
	// has no integrity protection unless it is signed, and anyone can
	// change it undetected otherwise.
	AllowUnauthenticated bool
	// AllowUnsigned accepts content that is not SignedData (what `openssl
	// cms -encrypt` writes).
	AllowUnsigned bool
	// Senders are the trusted senders whose signatures are accepted.
	Senders SenderKeys
}

// PendingOutput receives plaintext that is not yet authenticated: a file
// not yet linked into place, a buffer not yet shown. Nothing written to it
// may be released before DecryptTo returns without error (and the caller
// has checked the sender). It is deliberately not an io.Writer alone, so
// that os.Stdout cannot be passed by mistake.
type PendingOutput interface {
	io.Writer
	// Discard is called by DecryptTo when the message failed: the
	// implementation destroys what was written.
	Discard() error
}

// Result describes content that decrypted and verified.
type Result struct {
	// Length is the number of plaintext bytes.
	Length int64
	// Sender is the verified signer of signed content, nil otherwise.
	Sender *SenderInfo
}

// A Decrypter holds the content-encryption key of one message and
// decrypts it once: with DecryptTo, or with VerifyTo and then the
// Verified's DecryptFrom.
type Decrypter struct {
	m    *message
	opts OpenOptions
	cek  []byte
	rid  RecipientID
	used bool
}

// Open reads a CMS message (BER/DER, PEM or S/MIME, detected) up to its
// encrypted content, finds the first recipient info that names a key
// keys holds, and recovers the content-encryption key with it. It reads
// no further: the content is read by the Decrypter's methods.
//
// EnvelopedData is refused before any key is used unless
// AllowUnauthenticated is set. Whether the content is signed is known only
// from the content (see the package documentation): the Decrypter's
// methods refuse unsigned content without AllowUnsigned, and signed
// content whose signer Senders does not trust.
func Open(src io.Reader, keys KeyFinder, opts *OpenOptions) (*Decrypter, error) {
	if opts == nil {
		opts = &OpenOptions{}
	}
	m, err := readMessage(src)
	if err != nil {
		return nil, err
	}
	if !m.authenticated() && !opts.AllowUnauthenticated {
		return nil, ErrUnauthenticated
	}
	ri, idx, key, err := findKey(m.ris, keys)
	if err != nil {
		return nil, err
	}
	cek, err := unwrap(ri, idx, key, m.alg.keyLen)
	if err != nil {
		return nil, err
	}
	rid := ri.rid
	if ri.kind == kindKARI {
		rid = ri.keys[idx].rid
	}
	return &Decrypter{m: m, opts: *opts, cek: cek, rid: rid}, nil
}

// Recipient returns the recipient identifier whose key opened the message.
func (d *Decrypter) Recipient() RecipientID { return d.rid }

// Authenticated reports whether the message is AuthEnvelopedData.
func (d *Decrypter) Authenticated() bool { return d.m.authenticated() }

// DecryptTo decrypts the content into out and verifies it: the GCM tag,
// and for signed content the signature of a trusted sender. On any
// failure it calls out.Discard and returns the error (ErrDecrypt for
// every failure of the tag, the padding or, for unauthenticated
// EnvelopedData, of anything inside the content).
func (d *Decrypter) DecryptTo(out PendingOutput) (*Result, error) {
	res, err := d.decryptTo(out)
	if err != nil {
		if derr := out.Discard(); derr != nil {
			return nil, errors.Join(err, derr)
		}
		return nil, err
	}
	return res, nil
}

func (d *Decrypter) decryptTo(out io.Writer) (*Result, error) {
	if err := d.take(); err != nil {
		return nil, err
	}
	defer clear(d.cek)
	r, err := d.run(d.m.content, out, false)
	if err != nil {
		return nil, err
	}
	return r.res, nil
}

func (d *Decrypter) take() error {
	if d.used {
		return errors.New("cms: a Decrypter decrypts once")
	}
	d.used = true
	return nil
}

// VerifyTo reads the rest of the message and verifies it without
// releasing any plaintext, copying the encrypted content octets to spool
// (ciphertext only: never plaintext). For unsigned AuthEnvelopedData it
// only authenticates; signed content is decrypted in memory to check the
// signature and discarded. The returned Verified decrypts the spooled
// copy; it is for callers that must stream to an output they cannot take
// back, such as standard output.
func (d *Decrypter) VerifyTo(spool io.Writer) (*Verified, error) {
	if err := d.take(); err != nil {
		return nil, err
	}
	sw := &outWriter{w: spool}
	r, err := d.run(io.TeeReader(d.m.content, sw), io.Discard, true)
	if err != nil {
		clear(d.cek)
		return nil, err
	}
	v := &Verified{alg: d.m.alg, cek: d.cek, mac: d.m.mac, n: r.n, res: r.res, opts: d.opts, encType: d.m.encType}
	d.cek = nil
	return v, nil
}

// outWriter marks errors of the caller's writer, so that they are not
// taken for errors of the message.
type outWriter struct {
	w io.Writer
	n int64
}

type outError struct{ err error }

func (e *outError) Error() string { return e.err.Error() }
func (e *outError) Unwrap() error { return e.err }

func (o *outWriter) Write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	o.n += int64(n)
	if err != nil {
		return n, &outError{err}
	}
	return n, nil
}

type runResult struct {
	res *Result
	n   int64 // content octets
}

// run decrypts the content octets from src, writes the plaintext (or
// signed eContent) to dst, reads the rest of the message and verifies
// everything. Nothing it returns on success was unverified.
func (d *Decrypter) run(src io.Reader, dst io.Writer, verifyOnly bool) (*runResult, error) {
	m := d.m
	p, err := newPlainReader(src, m.alg, d.cek, false)
	if err != nil {
		return nil, err
	}
	defer p.close()
	ow := &outWriter{w: dst}
	sc, inner := readContent(p, ow, m.encType, &d.opts, verifyOnly)
	var oe *outError
	if errors.As(inner, &oe) {
		return nil, oe.err // the caller's writer failed: stop there
	}
	if inner != nil {
		// Keep authenticating to the end, so that a forged message gets
		// the same error whatever its content.
		p.hashOnly.Store(m.alg.gcm)
		p.out = nil
		if _, err := io.Copy(io.Discard, p); err != nil && p.err == nil {
			return nil, err
		}
	}
	if errors.As(p.err, &oe) {
		return nil, oe.err
	}
	if p.err != nil && !errors.Is(p.err, ErrDecrypt) {
		return nil, p.err // the message's structure, not its secrets
	}
	if err := m.readTrailer(); err != nil {
		return nil, err
	}
	if p.err != nil || (m.alg.gcm && !p.tagOK(m.mac)) {
		return nil, ErrDecrypt
	}
	res := &Result{Length: ow.n}
	if inner == nil && sc != nil {
		res.Sender, inner = sc.verify(d.opts.Senders)
	}
	if inner != nil {
		return nil, contentError(m.alg, inner)
	}
	return &runResult{res: res, n: p.n}, nil
}

// sniffLen is how much decrypted content readContent looks at to tell
// signed content from data.
const sniffLen = 32

// readContent copies the plaintext, or the eContent of signed content, to
// w. Content is signed when the encrypted content type is id-signedData
// (a bare SignedData, RFC 5652 nesting) or when it is id-data and the
// plaintext is a ContentInfo of type id-signedData (what Seal writes).
// With verifyOnly, unsigned GCM content is only authenticated, not
// decrypted, past its first bytes.
func readContent(p *plainReader, w io.Writer, encType oid, opts *OpenOptions, verifyOnly bool) (*signedContent, error) {
	head := make([]byte, sniffLen)
	n, err := io.ReadFull(p, head)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return nil, err
	}
	head = head[:n]
	bare := encType == oidSignedData
	if !bare && !isSignedContentInfo(head) {
		if !opts.AllowUnsigned {
			return nil, ErrUnsigned
		}
		if verifyOnly && p.gcm != nil {
			p.hashOnly.Store(true)
			p.out = nil
		}
		if _, err := w.Write(head); err != nil {
			return nil, err
		}
		_, err := io.Copy(w, p)
		return nil, err
	}
	if opts.Senders == nil {
		return nil, errNoSenders
	}
	return readSigned(bufio.NewReaderSize(io.MultiReader(bytes.NewReader(head), p), ioBuf), w, bare)
}

// contentError maps an error about the decrypted content. For
// EnvelopedData, whose content anyone can alter, every such error is
// ErrDecrypt, so that the answer says nothing about the padding; an
// untrusted sender is still named.
func contentError(alg *contentAlg, err error) error {
	var us *UnknownSenderError
	if alg.gcm || errors.As(err, &us) || !errors.Is(err, ErrRejected) || err == ErrUnsigned {
		return err
	}
	return ErrDecrypt
}

// Verified is a message that VerifyTo verified, holding its key until
// DecryptFrom.
type Verified struct {
	alg     *contentAlg
	cek     []byte
	mac     []byte
	n       int64
	res     *Result
	opts    OpenOptions
	encType oid
}

// Result returns what VerifyTo verified.
func (v *Verified) Result() *Result { return v.res }

// DecryptFrom decrypts the spooled content octets to dst. It checks
// again, at the end, that they are the ones VerifyTo authenticated (the
// tag, the length, the signer); a mismatch (the spool changed) is
// ErrDecrypt, after output was written. It can be called once.
func (v *Verified) DecryptFrom(spool io.Reader, dst io.Writer) error {
	if v.cek == nil {
		return errors.New("cms: DecryptFrom is called once")
	}
	defer func() { clear(v.cek); v.cek = nil }()
	p, err := newPlainReader(&io.LimitedReader{R: spool, N: v.n + 1}, v.alg, v.cek, false)
	if err != nil {
		return err
	}
	defer p.close()
	ow := &outWriter{w: dst}
	sc, err := readContent(p, ow, v.encType, &v.opts, false)
	var oe *outError
	if errors.As(err, &oe) {
		return oe.err
	}
	if err != nil || p.n != v.n || (v.alg.gcm && !p.tagOK(v.mac)) || (!v.alg.gcm && p.err != nil) {
		return ErrDecrypt
	}
	if (sc != nil) != (v.res.Sender != nil) {
		return ErrDecrypt
	}
	if sc != nil {
		s, err := sc.verify(v.opts.Senders)
		if err != nil || s.KeyID != v.res.Sender.KeyID || s.Serial != v.res.Sender.Serial {
			return ErrDecrypt
		}
	}
	return nil
}
