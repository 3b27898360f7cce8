package cms

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"sort"
)

// MaxRecipients is the most recipients Seal writes to.
const MaxRecipients = 4096

// SealOptions change what Seal writes. The zero value writes unsigned
// binary AuthEnvelopedData with AES-256-GCM.
type SealOptions struct {
	// Armor writes PEM ("-----BEGIN CMS-----", base64 in lines of 64)
	// instead of binary.
	Armor bool
	// Compat writes EnvelopedData with AES-256-CBC instead of
	// AuthEnvelopedData with AES-256-GCM, for readers without
	// AuthEnvelopedData (CryptoAPI, older mail clients). Its content is
	// NOT authenticated: anyone can change it undetected, unless it is
	// signed (Sender) and the reader checks the signature.
	Compat bool
	// Sender, when set, signs the content: a SignedData inside.
	Sender *Sender
	// Rand is the source of keys, nonces and ephemeral keys; nil means
	// crypto/rand.Reader.
	Rand io.Reader
}

// Seal returns a WriteCloser that encrypts what is written to it to the
// recipients, writing a CMS message to dst as it goes in constant
// memory: the content as an indefinite-length BER OCTET STRING in
// segments (the encoding `openssl cms -stream` writes), the rest DER.
// Close must be called and its error checked: it writes the end of the
// message (the GCM tag, the signature). Close does not close dst.
func Seal(dst io.Writer, recipients []*Recipient, opts *SealOptions) (io.WriteCloser, error) {
	if opts == nil {
		opts = &SealOptions{}
	}
	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	if len(recipients) == 0 || len(recipients) > MaxRecipients {
		return nil, fmt.Errorf("cms: %d recipients: need 1 to %d", len(recipients), MaxRecipients)
	}
	alg := &contentAlg{oid: oidAES256GCM, gcm: true, keyLen: 32, iv: make([]byte, gcmNonceSize)}
	if opts.Compat {
		alg = &contentAlg{oid: oidAES256CBC, keyLen: 32, iv: make([]byte, 16)}
	}
	cek := make([]byte, alg.keyLen)
	defer clear(cek)
	if _, err := io.ReadFull(rnd, cek); err != nil {
		return nil, fmt.Errorf("cms: content key: %w", err)
	}
	if _, err := io.ReadFull(rnd, alg.iv); err != nil {
		return nil, fmt.Errorf("cms: nonce: %w", err)
	}
	ris, version, err := recipientInfos(rnd, recipients, cek)
	if err != nil {
		return nil, err
	}
	s := &sealWriter{}
	s.bw = bufio.NewWriterSize(dst, ioBuf)
	var out io.Writer = s.bw
	if opts.Armor {
		s.pem = newPEMWriter(s.bw)
		out = s.pem
	}
	if !opts.Compat {
		version = 0 // AuthEnvelopedData is always version 0 (RFC 5083)
	}
	if _, err := out.Write(messageHead(alg, opts, ris, version)); err != nil {
		return nil, err
	}
	if s.content, err = newContentWriter(out, alg, cek); err != nil {
		return nil, err
	}
	s.out = out
	s.w = s.content
	if opts.Sender != nil {
		if s.signed, err = newSignedWriter(s.content, opts.Sender, rnd); err != nil {
			return nil, err
		}
		s.w = s.signed
	}
	return s, nil
}

// recipientInfos returns the DER RecipientInfos SET, its elements sorted
// (DER SET OF), one per distinct recipient, and the EnvelopedData version
// they call for (RFC 5652 section 6.1: 0 if all are version 0, else 2).
func recipientInfos(rnd io.Reader, recipients []*Recipient, cek []byte) ([]byte, int, error) {
	seen := map[string]bool{}
	var list [][]byte
	version := 0
	for _, r := range recipients {
		if k := r.rid.String(); seen[k] {
			continue
		} else {
			seen[k] = true
		}
		ri, v, err := r.recipientInfo(rnd, cek)
		if err != nil {
			return nil, 0, err
		}
		if v != 0 {
			version = 2
		}
		list = append(list, ri)
	}
	sort.Slice(list, func(i, j int) bool { return bytes.Compare(list[i], list[j]) < 0 })
	n := 0
	for _, ri := range list {
		n += len(ri)
	}
	if n > maxRecipients-16 {
		return nil, 0, errors.New("cms: recipient infos too large")
	}
	set := appendLength([]byte{tagSet}, n)
	for _, ri := range list {
		set = append(set, ri...)
	}
	return set, version, nil
}

// messageHead is everything before the encrypted content's segments.
func messageHead(alg *contentAlg, opts *SealOptions, ris []byte, version int) []byte {
	// The encrypted content is id-data also when it is signed: see
	// signed.go.
	typ, encType := oidAuthEnvelopedData, oidData
	if opts.Compat {
		typ = oidEnvelopedData
	}
	var h []byte
	h = append(h, tagSequence, 0x80)
	h = appendTLV(h, tagOID, []byte(typ))
	h = append(h, tagCtx0Cons, 0x80, tagSequence, 0x80)
	h = appendTLV(h, tagInteger, []byte{byte(version)})
	h = append(h, ris...)
	h = append(h, tagSequence, 0x80)
	h = appendTLV(h, tagOID, []byte(encType))
	h = append(h, derOf(alg.add)...)
	return append(h, tagCtx0Cons, 0x80)
}

type sealWriter struct {
	bw      *bufio.Writer
	pem     *pemWriter
	out     io.Writer
	content *contentWriter
	signed  *signedWriter
	w       io.Writer
	err     error
}

func (s *sealWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(p)
	if err != nil {
		s.err = err
	}
	return n, err
}

// ReadFrom implements io.ReaderFrom: it reads r to its end in blocks of
// a content segment, so that a copy into the writer moves large blocks.
func (s *sealWriter) ReadFrom(r io.Reader) (int64, error) {
	// The wrappers keep io.CopyBuffer from calling back into ReadFrom, or
	// into r's WriteTo with its small buffer.
	return io.CopyBuffer(struct{ io.Writer }{s}, struct{ io.Reader }{r}, make([]byte, contentChunk))
}

// Close writes the end of the message.
func (s *sealWriter) Close() error {
	if s.err != nil {
		if s.err != errClosed {
			s.content.abort()
		}
		return s.err
	}
	s.err = errClosed
	if s.signed != nil {
		if err := s.signed.close(); err != nil {
			s.content.abort()
			return err
		}
	}
	tag, err := s.content.close()
	if err != nil {
		return err
	}
	t := []byte{0, 0, 0, 0} // [0] encryptedContent, EncryptedContentInfo
	if tag != nil {
		t = appendTLV(t, tagOctetString, tag)
	}
	t = append(t, 0, 0, 0, 0, 0, 0) // (Auth)EnvelopedData, [0], ContentInfo
	if _, err := s.out.Write(t); err != nil {
		return err
	}
	if s.pem != nil {
		if err := s.pem.Close(); err != nil {
			return err
		}
	}
	return s.bw.Flush()
}

// pemWriter writes "-----BEGIN CMS-----", base64 in lines of 64
// characters (RFC 7468), and the END line at Close.
type pemWriter struct {
	w   *bufio.Writer
	enc io.WriteCloser
	lw  *lineWriter
}

func newPEMWriter(w *bufio.Writer) *pemWriter {
	w.WriteString(pemBeginCMS + "\n")
	lw := &lineWriter{w: w}
	return &pemWriter{w: w, enc: base64.NewEncoder(base64.StdEncoding, lw), lw: lw}
}

func (p *pemWriter) Write(b []byte) (int, error) { return p.enc.Write(b) }

func (p *pemWriter) Close() error {
	if err := p.enc.Close(); err != nil {
		return err
	}
	if p.lw.col > 0 {
		p.w.WriteByte('\n')
	}
	_, err := p.w.WriteString(pemEndCMS + "\n")
	return err
}

type lineWriter struct {
	w   *bufio.Writer
	col int
}

func (l *lineWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(64-l.col, len(p))
		if _, err := l.w.Write(p[:k]); err != nil {
			return n, err
		}
		n += k
		l.col += k
		p = p[k:]
		if l.col == 64 {
			if err := l.w.WriteByte('\n'); err != nil {
				return n, err
			}
			l.col = 0
		}
	}
	return n, nil
}
