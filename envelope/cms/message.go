package cms

import (
	"io"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// message is an EnvelopedData or AuthEnvelopedData read up to the start
// of its encrypted content (RFC 5652 sections 3 and 6.1, RFC 5083 section
// 2.1). The content is then read through content, and the rest with
// readTrailer.
type message struct {
	in      *input
	b       *berReader
	typ     oid // oidEnvelopedData or oidAuthEnvelopedData
	version int64
	ris     []*recipientInfo
	encType oid // encryptedContentInfo.contentType
	alg     *contentAlg
	content *octetReader
	mac     []byte // AuthEnvelopedData's tag, after readTrailer
}

func (m *message) authenticated() bool { return m.typ == oidAuthEnvelopedData }

func readMessage(src io.Reader) (*message, error) {
	in, err := openInput(src)
	if err != nil {
		return nil, err
	}
	m := &message{in: in, b: newBERReader(in.br)}
	b := m.b
	if err := m.readContentInfo(); err != nil {
		return nil, err
	}
	if err := m.readVersion(); err != nil {
		return nil, err
	}
	tag, _, err := b.peekTag()
	if err != nil {
		return nil, err
	}
	if tag == tagCtx0Cons { // originatorInfo: certificates and CRLs, not used
		h, err := b.readHeader()
		if err != nil {
			return nil, err
		}
		if _, err := b.slurp(h, maxSmall); err != nil {
			return nil, err
		}
	}
	ris, err := b.readSmall(tagSet, "RecipientInfos", maxRecipients)
	if err != nil {
		return nil, err
	}
	var msg string
	if m.ris, msg = parseRecipientInfos(ris); msg != "" {
		return nil, b.fail(msg)
	}
	if err := m.readEncryptedContentInfo(); err != nil {
		return nil, err
	}
	return m, nil
}

// readOID reads an OBJECT IDENTIFIER element.
func (b *berReader) readOID(what string) (oid, error) {
	el, err := b.readSmall(tagOID, what, 256)
	if err != nil {
		return "", err
	}
	s := cryptobyte.String(el)
	var o cryptobyte.String
	if !s.ReadASN1(&o, asn1.OBJECT_IDENTIFIER) || len(o) == 0 {
		return "", b.fail("bad " + what)
	}
	return oid(o), nil
}

// readInt reads a small INTEGER element.
func (b *berReader) readInt(what string) (int64, error) {
	el, err := b.readSmall(tagInteger, what, 32)
	if err != nil {
		return 0, err
	}
	s := cryptobyte.String(el)
	var v int64
	if !s.ReadASN1Int64WithTag(&v, asn1.INTEGER) {
		return 0, b.fail("bad " + what)
	}
	return v, nil
}

// enterExpect reads a constructed element's header and enters it.
func (b *berReader) enterExpect(tag byte, what string) error {
	h, err := b.expect(tag, what)
	if err != nil {
		return err
	}
	return b.enter(h)
}

func (m *message) readContentInfo() error {
	b := m.b
	if err := b.enterExpect(tagSequence, "ContentInfo"); err != nil {
		return err
	}
	typ, err := b.readOID("content type")
	if err != nil {
		return err
	}
	if typ != oidEnvelopedData && typ != oidAuthEnvelopedData {
		return unsupported("content type " + typ.String() + " (want envelopedData or authEnvelopedData)")
	}
	m.typ = typ
	if err := b.enterExpect(tagCtx0Cons, "[0] content"); err != nil {
		return err
	}
	return b.enterExpect(tagSequence, typ.String())
}

func (m *message) readVersion() error {
	v, err := m.b.readInt("version")
	if err != nil {
		return err
	}
	m.version = v
	switch {
	case m.authenticated() && v == 0:
	case !m.authenticated() && (v == 0 || v == 2 || v == 3 || v == 4):
	default:
		return m.b.fail("unknown " + m.typ.String() + " version")
	}
	return nil
}

func (m *message) readEncryptedContentInfo() error {
	b := m.b
	if err := b.enterExpect(tagSequence, "EncryptedContentInfo"); err != nil {
		return err
	}
	var err error
	if m.encType, err = b.readOID("encrypted content type"); err != nil {
		return err
	}
	if m.encType != oidData && m.encType != oidSignedData {
		return unsupported("encrypted content type " + m.encType.String() + " (want data or signedData)")
	}
	el, err := b.readSmall(tagSequence, "contentEncryptionAlgorithm", 1024)
	if err != nil {
		return err
	}
	s := cryptobyte.String(el)
	var a algID
	if !readAlgID(&s, &a) {
		return b.fail("bad contentEncryptionAlgorithm")
	}
	alg, msg := parseContentAlg(a)
	if msg != "" {
		return unsupported(msg)
	}
	if alg.gcm != m.authenticated() {
		return unsupported(m.typ.String() + " with " + alg.String() + " (AuthEnvelopedData takes AES-GCM, EnvelopedData AES-CBC)")
	}
	m.alg = alg
	end, err := b.atEnd()
	if err != nil {
		return err
	}
	if end {
		return unsupported("detached content (no encryptedContent)")
	}
	h, err := b.readHeader()
	if err != nil {
		return err
	}
	if h.tag != tagCtx0Prim && h.tag != tagCtx0Cons {
		return b.fail("expected [0] encryptedContent")
	}
	limit := int64(maxLength)
	if alg.gcm {
		limit = gcmMaxBytes
	}
	m.content, err = newOctetReader(b, h, limit)
	return err
}

// readTrailer reads what follows the encrypted content: AuthEnvelopedData's
// mac (authAttrs are refused: RFC 5083 puts them after the content, as
// additional data that would have to be authenticated first) and
// unauthAttrs, EnvelopedData's unprotectedAttrs (both ignored), and checks
// that the message ends there.
func (m *message) readTrailer() error {
	b := m.b
	if err := b.leave(); err != nil { // EncryptedContentInfo
		return err
	}
	tag, ok, err := b.peekTag()
	if err != nil {
		return err
	}
	if m.authenticated() {
		if ok && tag == tagCtx1Cons {
			return unsupported("authEnvelopedData with authAttrs")
		}
		mac, err := b.readSmall(tagOctetString, "mac", 64)
		if err != nil {
			return err
		}
		s := cryptobyte.String(mac)
		var v cryptobyte.String
		if !s.ReadASN1(&v, asn1.OCTET_STRING) {
			return b.fail("bad mac")
		}
		m.mac = v
		tag, ok, err = b.peekTag()
		if err != nil {
			return err
		}
		if ok && tag == tagCtx2Cons {
			if err := m.skip(); err != nil {
				return err
			}
		}
	} else if ok && tag == tagCtx1Cons {
		if err := m.skip(); err != nil {
			return err
		}
	}
	for range 3 { // the (Auth)EnvelopedData, [0], ContentInfo
		if err := b.leave(); err != nil {
			return err
		}
	}
	return m.in.finish()
}

func (m *message) skip() error {
	h, err := m.b.readHeader()
	if err != nil {
		return err
	}
	_, err = m.b.slurp(h, maxSmall)
	return err
}
