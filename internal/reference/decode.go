package reference

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"strings"
)

// Stanza is a recipient stanza as the header carries it.
type Stanza struct {
	Type  byte
	KeyID []byte
	Body  []byte
}

// Ext is an extension as the header carries it.
type Ext struct {
	Type  uint16
	Value []byte
}

// Sender is the sender extension's value (section 2.3).
type Sender struct {
	KeyID     []byte
	Alg       byte
	SigLen    int
	StreamID  uint64
	Serial    uint64
	Timestamp uint64 // milliseconds since the Unix epoch
	// At is the offset of the value in the header, for tests that
	// rewrite a field (the serial is at At+43).
	At int
}

// Header is a parsed binary header.
type Header struct {
	Version   byte   // 1 or 2
	MACInput  []byte // magic || version || u24-prefixed body
	MAC       []byte
	ChunkLog2 byte
	Salt      []byte
	Stanzas   []Stanza
	Exts      []Ext
	Sender    *Sender // nil when anonymous
}

// Raw is the whole header, MAC included.
func (h *Header) Raw() []byte { return h.MACInput[:len(h.MACInput)+MACSize] }

// TrailerLen is the length of the signature after the payload.
func (h *Header) TrailerLen() int {
	if h.Sender == nil {
		return 0
	}
	return h.Sender.SigLen
}

func u16(b []byte) int { return int(b[0])<<8 | int(b[1]) }
func u24(b []byte) int { return int(b[0])<<16 | int(b[1])<<8 | int(b[2]) }

// Parse parses a binary header (section 2) and returns it with what
// follows it: the payload and the trailer.
func Parse(b []byte) (*Header, []byte, error) {
	if len(b) < len(Magic) || string(b[:len(Magic)]) != Magic {
		return nil, nil, errors.New("reference: not a tokenseal envelope (bad magic)")
	}
	p := len(Magic)
	if len(b) < p+1 {
		return nil, nil, errors.New("reference: truncated before version")
	}
	version := b[p]
	if version != Version1 && version != Version2 {
		return nil, nil, fmt.Errorf("reference: unknown envelope version %d", version)
	}
	p++
	if len(b) < p+3 {
		return nil, nil, errors.New("reference: truncated body length")
	}
	bodyLen := u24(b[p:])
	p += 3
	if bodyLen > MaxBody {
		return nil, nil, fmt.Errorf("reference: header body of %d bytes exceeds 4 MiB", bodyLen)
	}
	if len(b) < p+bodyLen+MACSize {
		return nil, nil, errors.New("reference: truncated header")
	}
	h := &Header{Version: version, MACInput: b[:p+bodyLen], MAC: b[p+bodyLen : p+bodyLen+MACSize]}
	if err := h.parseBody(b[p:p+bodyLen], p); err != nil {
		return nil, nil, err
	}
	return h, b[p+bodyLen+MACSize:], nil
}

// parseBody parses the header body, which starts at offset at.
func (h *Header) parseBody(body []byte, at int) error {
	start := len(body)
	if len(body) < 1+32 {
		return errors.New("reference: body too short for chunk_log2 and salt")
	}
	h.ChunkLog2, h.Salt = body[0], body[1:33]
	if h.ChunkLog2 != ChunkLog2 {
		return fmt.Errorf("reference: chunk_log2 %d, want 16", h.ChunkLog2)
	}
	body = body[33:]
	if len(body) < 3 {
		return errors.New("reference: body too short for stanza length")
	}
	stLen := u24(body)
	body = body[3:]
	if stLen > len(body) {
		return errors.New("reference: stanzas run past the body")
	}
	if err := h.parseStanzas(body[:stLen]); err != nil {
		return err
	}
	body = body[stLen:]
	if len(body) < 2 {
		return errors.New("reference: body too short for extension length")
	}
	exLen := u16(body)
	body = body[2:]
	if exLen > len(body) {
		return errors.New("reference: extensions run past the body")
	}
	if err := h.parseExts(body[:exLen], at+start-len(body)); err != nil {
		return err
	}
	if rest := body[exLen:]; len(rest) != 0 {
		return fmt.Errorf("reference: %d bytes left over in the header body", len(rest))
	}
	return nil
}

func (h *Header) parseStanzas(st []byte) error {
	seen := map[string]bool{} // type || key_id
	for len(st) > 0 {
		if len(h.Stanzas) == MaxStanza {
			return errors.New("reference: more than 4096 stanzas")
		}
		if len(st) < StanzaHdr {
			return errors.New("reference: stanza runs past the stanza list")
		}
		n := u16(st[1+KeyIDSize:])
		if len(st) < StanzaHdr+n {
			return errors.New("reference: stanza body runs past the stanza list")
		}
		tk := string(st[:1+KeyIDSize])
		if seen[tk] {
			return fmt.Errorf("reference: two stanzas with type 0x%02x and key_id %x", st[0], st[1:1+KeyIDSize])
		}
		seen[tk] = true
		h.Stanzas = append(h.Stanzas, Stanza{Type: st[0], KeyID: st[1 : 1+KeyIDSize], Body: st[StanzaHdr : StanzaHdr+n]})
		st = st[StanzaHdr+n:]
	}
	if len(h.Stanzas) == 0 {
		return errors.New("reference: zero stanzas")
	}
	return nil
}

// parseExts parses the extension list, which starts at offset at.
func (h *Header) parseExts(ex []byte, at int) error {
	prev := -1
	for off := 0; off < len(ex); {
		if len(ex)-off < 4 {
			return errors.New("reference: extension runs past the extension list")
		}
		typ, n := u16(ex[off:]), u16(ex[off+2:])
		if len(ex)-off < 4+n {
			return errors.New("reference: extension value runs past the extension list")
		}
		if typ <= prev {
			return fmt.Errorf("reference: extension 0x%04x out of order after 0x%04x", typ, prev)
		}
		prev = typ
		v := ex[off+4 : off+4+n]
		switch {
		case typ == ExtSender:
			s, err := parseSender(v)
			if err != nil {
				return err
			}
			s.At = at + off + 4
			h.Sender = s
		case typ == ExtPrevSender:
			if err := checkPrevSender(v); err != nil {
				return err
			}
		case typ&ExtCritical != 0:
			return fmt.Errorf("reference: unknown critical extension 0x%04x", typ)
		}
		h.Exts = append(h.Exts, Ext{Type: uint16(typ), Value: v})
		off += 4 + n
	}
	for _, e := range h.Exts {
		if e.Type == ExtPrevSender && h.Sender == nil {
			return errors.New("reference: previous-sender extension without a sender extension")
		}
	}
	return nil
}

// checkPrevSender checks a previous-sender value (section 2.4): 56
// bytes, prev_serial not 0, prev_timestamp possible.
func checkPrevSender(v []byte) error {
	if len(v) != PrevSenderLen {
		return fmt.Errorf("reference: previous-sender extension of %d bytes", len(v))
	}
	if binary.BigEndian.Uint64(v[40:]) == 0 {
		return errors.New("reference: previous-sender prev_serial 0")
	}
	if binary.BigEndian.Uint64(v[48:]) >= MaxTimestamp {
		return errors.New("reference: previous-sender prev_timestamp impossible")
	}
	return nil
}

func parseSender(v []byte) (*Sender, error) {
	if len(v) != SenderLen {
		return nil, fmt.Errorf("reference: sender extension of %d bytes", len(v))
	}
	s := &Sender{KeyID: v[:32], Alg: v[32], SigLen: u16(v[33:]),
		StreamID: binary.BigEndian.Uint64(v[35:]), Serial: binary.BigEndian.Uint64(v[43:]), Timestamp: binary.BigEndian.Uint64(v[51:])}
	switch {
	case s.Serial == 0:
		return nil, errors.New("reference: sender serial 0")
	case s.Timestamp >= MaxTimestamp:
		return nil, errors.New("reference: sender timestamp impossible")
	}
	switch {
	case s.Alg == SigECDSA && s.SigLen == 64:
	case s.Alg == SigPSS && s.SigLen >= 256 && s.SigLen <= 512:
	default:
		return nil, errors.New("reference: sig_alg or sig_len")
	}
	return s, nil
}

// Unwrap finds the file key (section 2, "To find the file key"): the
// stanzas are offered in order to the keys held; the first stanza whose
// type and key_id match a held key decides, and if it does not unwrap
// the envelope is refused without looking at later stanzas.
func Unwrap(h *Header, privs []crypto.PrivateKey) ([]byte, error) {
	for _, s := range h.Stanzas {
		for _, priv := range privs {
			matched, fk, err := TryStanza(s, priv)
			if !matched {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("reference: not addressed to this key or corrupted: %w", err)
			}
			return fk, nil
		}
	}
	var ids []string
	for _, s := range h.Stanzas {
		ids = append(ids, hex.EncodeToString(s.KeyID))
	}
	return nil, fmt.Errorf("reference: not addressed to any held key; addressed to %s", strings.Join(ids, ", "))
}

// TryStanza reports whether s is addressed to priv (type and key_id
// match) and, if so, the file key it unwraps to or why it does not.
func TryStanza(s Stanza, priv crypto.PrivateKey) (bool, []byte, error) {
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		if s.Type != TypeRSA || !bytes.Equal(s.KeyID, KeyID(&k.PublicKey)) || !RSASizeOK(&k.PublicKey) {
			return false, nil, nil // section 2, RSA key sizes: passed over
		}
		fk, err := unwrapRSA(s.Body, k)
		return true, fk, err
	case *ecdsa.PrivateKey:
		ci, err := CurveOf(k.Curve)
		if err != nil {
			return false, nil, err
		}
		if s.Type != ci.Type || !bytes.Equal(s.KeyID, KeyID(&k.PublicKey)) {
			return false, nil, nil
		}
		fk, err := unwrapECDH(s.Body, k, ci)
		return true, fk, err
	}
	return false, nil, nil
}

// unwrapRSA undoes an RSA-OAEP stanza body (section 4.1).
func unwrapRSA(body []byte, k *rsa.PrivateKey) ([]byte, error) {
	if len(body) < 1 {
		return nil, errors.New("empty RSA stanza body")
	}
	var hf func() hash.Hash
	switch body[0] {
	case OAEPSHA1:
		hf = sha1.New
	case OAEPSHA256:
		hf = sha256.New
	default:
		return nil, fmt.Errorf("unknown oaep_hash %d", body[0])
	}
	c := body[1:]
	if len(c) != k.Size() {
		return nil, fmt.Errorf("C is %d bytes, modulus %d", len(c), k.Size())
	}
	fk, err := rsa.DecryptOAEP(hf(), rand.Reader, k, c, nil)
	if err != nil {
		return nil, err
	}
	if len(fk) != KeySize {
		return nil, fmt.Errorf("file key is %d bytes", len(fk))
	}
	return fk, nil
}

// unwrapECDH undoes an ECDH stanza body (section 4.2).
func unwrapECDH(body []byte, k *ecdsa.PrivateKey, ci Curve) ([]byte, error) {
	ek, err := k.ECDH()
	if err != nil {
		return nil, err
	}
	if len(body) != ci.PointLen+40 {
		return nil, fmt.Errorf("ECDH stanza body is %d bytes", len(body))
	}
	e, w := body[:ci.PointLen], body[ci.PointLen:]
	if e[0] != 0x04 {
		return nil, errors.New("E is not an uncompressed point")
	}
	epub, err := ci.Curve.NewPublicKey(e) // on the curve, in range, not infinity
	if err != nil {
		return nil, err
	}
	z, err := ek.ECDH(epub)
	if err != nil {
		return nil, err
	}
	info := append(append([]byte(ci.Label), e...), ek.PublicKey().Bytes()...)
	fk, err := KWPUnwrap(X963(z, 1, info), w)
	if err != nil {
		return nil, err
	}
	if len(fk) != KeySize {
		return nil, fmt.Errorf("file key is %d bytes", len(fk))
	}
	return fk, nil
}

// Keys finds the file key of a parsed header and checks the header MAC;
// it returns the payload key.
func Keys(h *Header, privs []crypto.PrivateKey) ([]byte, error) {
	fk, err := Unwrap(h, privs)
	if err != nil {
		return nil, err
	}
	return checkMAC(h, fk)
}

// The steps of section 2.5. Every refusal of OpenSigned and Open wraps
// the sentinel of the step that failed.
var (
	ErrStepParse     = errors.New("reference: step 1 (parse)")
	ErrStepSender    = errors.New("reference: step 2 (sender)")
	ErrStepStanza    = errors.New("reference: step 3 (stanza)")
	ErrStepMAC       = errors.New("reference: step 4 (header MAC)")
	ErrStepPayload   = errors.New("reference: step 5 (payload)")
	ErrStepSignature = errors.New("reference: step 6 (signature)")
)

func step(s, err error) error { return fmt.Errorf("%w: %w", s, err) }

// Open decodes an anonymous envelope, binary or armored, with the keys
// held: a reader whose policy refuses signed envelopes (step 2), since
// it verifies no signature.
func Open(env []byte, privs ...crypto.PrivateKey) ([]byte, error) {
	return open(env, privs, nil, true)
}

// OpenSigned decodes an envelope, binary or armored, signed or
// anonymous, with the keys held and the senders trusted.
func OpenSigned(env []byte, privs []crypto.PrivateKey, senders []crypto.PublicKey) ([]byte, error) {
	return open(env, privs, senders, false)
}

// open checks env in the steps of section 2.5.
func open(env []byte, privs []crypto.PrivateKey, senders []crypto.PublicKey, anonymousOnly bool) ([]byte, error) {
	// Step 1: the armor of the header's lines, and the header. Broken
	// armor after them is a payload refusal (step 5).
	bin, armorErr := binaryPrefix(env)
	h, rest, err := Parse(bin)
	if err != nil {
		if armorErr != nil {
			err = armorErr
		}
		return nil, step(ErrStepParse, err)
	}
	// Step 2.
	senderKey, err := trustedSender(h, senders, anonymousOnly)
	if err != nil {
		return nil, step(ErrStepSender, err)
	}
	// Steps 3 and 4.
	fk, err := Unwrap(h, privs)
	if err != nil {
		return nil, step(ErrStepStanza, err)
	}
	kp, err := checkMAC(h, fk)
	if err != nil {
		return nil, step(ErrStepMAC, err)
	}
	// Step 5.
	if armorErr != nil {
		return nil, step(ErrStepPayload, armorErr)
	}
	if len(rest) < h.TrailerLen() {
		return nil, step(ErrStepPayload, errors.New("reference: trailer truncated"))
	}
	payload, trailer := rest[:len(rest)-h.TrailerLen()], rest[len(rest)-h.TrailerLen():]
	pt, err := DecryptPayload(kp, payload)
	if err != nil {
		return nil, step(ErrStepPayload, err)
	}
	// Step 6.
	if h.Sender != nil {
		if err := VerifySignature(senderKey, h.Sender, bin[:len(bin)-len(rest)], payload, trailer); err != nil {
			return nil, step(ErrStepSignature, err)
		}
	}
	return pt, nil
}

// trustedSender is step 2: the trusted key of a signed envelope's sender.
func trustedSender(h *Header, senders []crypto.PublicKey, anonymousOnly bool) (crypto.PublicKey, error) {
	if h.Sender == nil {
		return nil, nil
	}
	if anonymousOnly {
		return nil, errors.New("reference: sender extension present; Open opens anonymous envelopes only")
	}
	for _, p := range senders {
		if bytes.Equal(KeyID(p), h.Sender.KeyID) {
			return p, nil
		}
	}
	return nil, errors.New("reference: untrusted sender")
}

// checkMAC is step 4; it returns the payload key.
func checkMAC(h *Header, fk []byte) ([]byte, error) {
	kh, kp := DeriveKeys(fk, h.Salt)
	m := hmac.New(sha256.New, kh)
	m.Write(h.MACInput)
	if !hmac.Equal(m.Sum(nil), h.MAC) {
		return nil, errors.New("reference: header MAC mismatch")
	}
	return kp, nil
}

// VerifySignature checks the trailer (section 6) of an envelope whose
// payload was framed and authenticated already.
func VerifySignature(pub crypto.PublicKey, snd *Sender, header, payload, sig []byte) error {
	d, err := SignedDigest(header, payload)
	if err != nil {
		return err
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if snd.Alg != SigECDSA || k.Curve != elliptic.P256() || len(sig) != 64 {
			return errors.New("reference: not an ECDSA P-256 sender")
		}
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if s.Cmp(new(big.Int).Rsh(k.Curve.Params().N, 1)) > 0 {
			return errors.New("reference: high-S signature")
		}
		if !ecdsa.Verify(k, d, r, s) {
			return errors.New("reference: bad ECDSA signature")
		}
		return nil
	case *rsa.PublicKey:
		if snd.Alg != SigPSS || len(sig) != k.Size() {
			return errors.New("reference: not an RSA-PSS sender")
		}
		if !RSASizeOK(k) {
			return errors.New("reference: RSA sender key outside 2048 to 4096 bits")
		}
		return rsa.VerifyPSS(k, crypto.SHA256, d, sig, &rsa.PSSOptions{SaltLength: 32, Hash: crypto.SHA256})
	}
	return errors.New("reference: unsupported sender key")
}

// SignedDigest is the digest d the sender signs (section 6), by the
// version byte of header: 6.1 for version 1, 6.2 for version 2.
func SignedDigest(header, payload []byte) ([]byte, error) {
	if len(header) <= len(Magic) {
		return nil, errors.New("reference: no version byte")
	}
	switch header[len(Magic)] {
	case Version1:
		return DigestV1(header, payload), nil
	case Version2:
		chunks, err := Chunks(payload)
		if err != nil {
			return nil, err
		}
		return DigestV2(header, chunks), nil
	}
	return nil, fmt.Errorf("reference: unknown envelope version %d", header[len(Magic)])
}

// DigestV1 is d of section 6.1.
func DigestV1(header, payload []byte) []byte {
	hh, ph := sha256.Sum256(header), sha256.Sum256(payload)
	m := append([]byte(SigContext), hh[:]...)
	d := sha256.Sum256(append(m, ph[:]...))
	return d[:]
}

// ChunkDigest is chunk_digest_i of section 6.2 for chunk i, the chunk
// as sent (ciphertext and tag).
func ChunkDigest(i uint64, last bool, chunk []byte) []byte {
	h := sha256.New()
	h.Write([]byte(ChunkLabel))
	h.Write(Nonce(i, last))
	h.Write(chunk)
	return h.Sum(nil)
}

// DigestV2 is d of section 6.2 for the payload's chunks, as Chunks cuts
// them; the last one is flagged.
func DigestV2(header []byte, chunks [][]byte) []byte {
	list := sha256.New()
	for i, c := range chunks {
		list.Write(ChunkDigest(uint64(i), i == len(chunks)-1, c))
	}
	hh := sha256.Sum256(header)
	m := append([]byte(SigContext2), hh[:]...)
	m = binary.BigEndian.AppendUint64(m, uint64(len(chunks)))
	m = list.Sum(m)
	if len(m) != 95 {
		panic("reference: M of section 6.2 is not 95 bytes")
	}
	d := sha256.Sum256(m)
	return d[:]
}

// RSASizeOK is section 2's rule: an RSA key of 2048 to 4096 bits.
func RSASizeOK(k *rsa.PublicKey) bool {
	bits := k.N.BitLen()
	return bits >= 2048 && bits <= 4096
}
