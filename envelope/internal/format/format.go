// Package format reads and writes the tokenseal envelope header and its
// ASCII armor. It knows the byte layout only; it holds no keys and does no
// cryptography beyond what parsing needs. FORMAT.md in the envelope
// directory is the contract this package implements.
package format

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/cryptobyte"
)

// Magic opens every binary envelope; the version byte follows it.
const Magic = "tokenseal"

// Envelope versions (FORMAT.md section 9). They differ only in what the
// sender's signature covers; this package reads and writes both, and
// writers write Version.
const (
	Version1 = 1
	Version2 = 2
	Version  = Version2
)

// ChunkLog2 is the base-2 logarithm of the payload chunk size. Versions 1
// and 2 fix it at 16 (64 KiB); the field exists so inspect can show it
// and a later version can change it.
const ChunkLog2 = 16

// Limits, checked before anything is allocated.
const (
	MaxBodyLen   = 4 << 20 // bytes in the header body
	MaxStanzas   = 4096    // recipient stanzas in one header
	SaltLen      = 32
	KeyIDLen     = 32
	MACLen       = 32
	prefixLen    = len(Magic) + 1 + 3 // magic, version, u24 body length
	maxStanzaLen = 1<<16 - 1
)

// Stanza types. A reader skips stanzas of a type it does not know: they are
// addressed to recipients of kinds it cannot serve.
const (
	StanzaRSAOAEP  = 0x01
	StanzaECDHP256 = 0x02
	StanzaECDHP384 = 0x03
)

// Extension types. The high bit marks an extension a reader must
// understand; a reader refuses a header with an unknown critical extension
// and ignores an unknown non-critical one (it is still covered by the MAC).
const (
	CriticalBit       = 0x8000
	ExtSender         = 0x8001
	ExtPreviousSender = 0x0002
	senderBodyLen     = KeyIDLen + 1 + 2 + 8 + 8 + 8
)

// Signature algorithms named in the sender extension.
const (
	SigECDSAP256SHA256 = 0x01 // trailer: r || s, 32 bytes each, big-endian
	SigRSAPSSSHA256    = 0x02 // trailer: the PSS signature, modulus length
)

// ParseError reports a malformed header. Its message never contains key
// material.
type ParseError struct {
	What string
	// Err is the condition's sentinel (such as [ErrUnknownVersion]) when
	// it has one, nil otherwise; errors.Is finds it.
	Err error
}

func (e *ParseError) Error() string { return "malformed envelope: " + e.What }

// Unwrap returns e.Err.
func (e *ParseError) Unwrap() error { return e.Err }

func perr(format string, args ...any) error {
	return &ParseError{What: fmt.Sprintf(format, args...)}
}

// ErrUnknownVersion is wrapped by the ParseError for an envelope whose
// version byte this package does not implement.
var ErrUnknownVersion = errors.New("unknown envelope version")

func knownVersion(v uint8) bool { return v == Version1 || v == Version2 }

func unknownVersion(v uint8) error {
	return &ParseError{What: fmt.Sprintf("%v %d", ErrUnknownVersion, v), Err: ErrUnknownVersion}
}

// Stanza is one recipient's copy of the file key.
type Stanza struct {
	Type  uint8
	KeyID [KeyIDLen]byte
	Body  []byte // type-specific; see FORMAT.md
}

// Sender is the content of the sender extension.
type Sender struct {
	KeyID     [KeyIDLen]byte
	SigAlg    uint8
	SigLen    uint16
	StreamID  uint64
	Serial    uint64
	Timestamp uint64 // milliseconds since the Unix epoch, UTC
}

// PreviousSender is the content of the previous-sender extension that a
// rewrap writes: who had signed the envelope before it was rewrapped.
type PreviousSender struct {
	KeyID     [KeyIDLen]byte
	StreamID  uint64
	Serial    uint64
	Timestamp uint64
}

const previousSenderLen = KeyIDLen + 8 + 8 + 8

// MarshalPreviousSender encodes the previous-sender extension's value.
func MarshalPreviousSender(s *Sender) []byte {
	var b cryptobyte.Builder
	b.AddBytes(s.KeyID[:])
	b.AddUint64(s.StreamID)
	b.AddUint64(s.Serial)
	b.AddUint64(s.Timestamp)
	return b.BytesOrPanic()
}

// MaxTimestamp is the first timestamp, in milliseconds since 1970, that
// no clock gives (10000-01-01T00:00:00Z); FORMAT.md 2.3.
const MaxTimestamp = 253402300800000

// PreviousSender returns the header's previous-sender extension, or nil.
// A malformed one is an error: ParseHeader refuses it (FORMAT.md 2.4).
func (h *Header) PreviousSender() (*PreviousSender, error) {
	for _, e := range h.Unknown {
		if e.Type == ExtPreviousSender {
			return parsePreviousSender(e.Value)
		}
	}
	return nil, nil
}

func parsePreviousSender(value []byte) (*PreviousSender, error) {
	if len(value) != previousSenderLen {
		return nil, perr("previous-sender extension has length %d, want %d", len(value), previousSenderLen)
	}
	v := cryptobyte.String(value)
	p := &PreviousSender{}
	v.CopyBytes(p.KeyID[:])
	v.ReadUint64(&p.StreamID)
	v.ReadUint64(&p.Serial)
	v.ReadUint64(&p.Timestamp)
	switch {
	case p.Serial == 0:
		return nil, perr("previous-sender extension names serial 0")
	case p.Timestamp >= MaxTimestamp:
		return nil, perr("previous-sender extension has an impossible timestamp (%d ms)", p.Timestamp)
	}
	return p, nil
}

// Extension is an extension this package does not interpret.
type Extension struct {
	Type  uint16
	Value []byte
}

// Header is a parsed envelope header.
type Header struct {
	Version   uint8 // Version1 or Version2
	ChunkLog2 uint8
	Salt      [SaltLen]byte
	Stanzas   []*Stanza
	Sender    *Sender     // nil for an anonymous envelope
	Unknown   []Extension // non-critical extensions, kept so re-encoding is exact
	MAC       [MACLen]byte
}

// TrailerLen is the number of bytes after the last payload chunk.
func (h *Header) TrailerLen() int {
	if h.Sender == nil {
		return 0
	}
	return int(h.Sender.SigLen)
}

// MarshalWithoutMAC returns magic, version, body length and body: the bytes
// the header MAC covers.
func (h *Header) MarshalWithoutMAC() ([]byte, error) {
	var body cryptobyte.Builder
	body.AddUint8(h.ChunkLog2)
	body.AddBytes(h.Salt[:])
	body.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, s := range h.Stanzas {
			b.AddUint8(s.Type)
			b.AddBytes(s.KeyID[:])
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(s.Body) })
		}
	})
	exts, err := h.extensions()
	if err != nil {
		return nil, err
	}
	body.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, e := range exts {
			b.AddUint16(e.Type)
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.Value) })
		}
	})
	if !knownVersion(h.Version) {
		return nil, fmt.Errorf("encoding header: unknown version %d", h.Version)
	}
	bb, err := body.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encoding header: %w", err)
	}
	if len(bb) > MaxBodyLen {
		return nil, errors.New("encoding header: header too large")
	}
	out := make([]byte, 0, prefixLen+len(bb)+MACLen)
	out = append(out, Magic...)
	out = append(out, h.Version, byte(len(bb)>>16), byte(len(bb)>>8), byte(len(bb)))
	return append(out, bb...), nil
}

// Marshal returns the whole header, MAC included.
func (h *Header) Marshal() ([]byte, error) {
	b, err := h.MarshalWithoutMAC()
	if err != nil {
		return nil, err
	}
	return append(b, h.MAC[:]...), nil
}

func (h *Header) extensions() ([]Extension, error) {
	exts := append([]Extension(nil), h.Unknown...)
	if h.Sender != nil {
		var b cryptobyte.Builder
		s := h.Sender
		b.AddBytes(s.KeyID[:])
		b.AddUint8(s.SigAlg)
		b.AddUint16(s.SigLen)
		b.AddUint64(s.StreamID)
		b.AddUint64(s.Serial)
		b.AddUint64(s.Timestamp)
		exts = append(exts, Extension{Type: ExtSender, Value: b.BytesOrPanic()})
	}
	// Canonical order: strictly increasing type. Few extensions: insertion sort.
	for i := 1; i < len(exts); i++ {
		for j := i; j > 0 && exts[j].Type < exts[j-1].Type; j-- {
			exts[j], exts[j-1] = exts[j-1], exts[j]
		}
	}
	for i := 1; i < len(exts); i++ {
		if exts[i].Type == exts[i-1].Type {
			return nil, fmt.Errorf("encoding header: extension %#04x twice", exts[i].Type)
		}
	}
	return exts, nil
}

// ReadHeader reads exactly one header from r, MAC included, and parses it.
// It returns the raw header bytes as well, which the signature covers. It
// does not check the MAC: that needs the file key.
func ReadHeader(r io.Reader) (*Header, []byte, error) {
	prefix := make([]byte, prefixLen)
	if _, err := io.ReadFull(r, prefix); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, nil, perr("header truncated")
		}
		return nil, nil, fmt.Errorf("reading header: %w", err)
	}
	if string(prefix[:len(Magic)]) != Magic {
		return nil, nil, perr("not a tokenseal envelope")
	}
	if v := prefix[len(Magic)]; !knownVersion(v) {
		return nil, nil, unknownVersion(v)
	}
	n := int(prefix[len(Magic)+1])<<16 | int(prefix[len(Magic)+2])<<8 | int(prefix[len(Magic)+3])
	if n > MaxBodyLen {
		return nil, nil, perr("header length %d exceeds the limit of %d bytes", n, MaxBodyLen)
	}
	raw := make([]byte, prefixLen+n+MACLen)
	copy(raw, prefix)
	if _, err := io.ReadFull(r, raw[prefixLen:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, nil, perr("header truncated")
		}
		return nil, nil, fmt.Errorf("reading header: %w", err)
	}
	h, err := ParseHeader(raw)
	if err != nil {
		return nil, nil, err
	}
	return h, raw, nil
}

// ParseHeader parses a complete header, MAC included, with nothing after it.
func ParseHeader(raw []byte) (*Header, error) {
	s := cryptobyte.String(raw)
	var magic []byte
	var version uint8
	var body cryptobyte.String
	if !s.ReadBytes(&magic, len(Magic)) || string(magic) != Magic {
		return nil, perr("not a tokenseal envelope")
	}
	if !s.ReadUint8(&version) {
		return nil, perr("header truncated")
	}
	if !knownVersion(version) {
		return nil, unknownVersion(version)
	}
	if !s.ReadUint24LengthPrefixed(&body) {
		return nil, perr("header truncated")
	}
	if len(body) > MaxBodyLen {
		return nil, perr("header too large")
	}
	h := &Header{Version: version}
	if !s.CopyBytes(h.MAC[:]) {
		return nil, perr("header truncated")
	}
	if !s.Empty() {
		return nil, perr("trailing data after header")
	}
	if err := h.parseBody(body); err != nil {
		return nil, err
	}
	return h, nil
}

// parseBody parses the header body: chunk size, salt, stanzas and
// extensions.
func (h *Header) parseBody(body cryptobyte.String) error {
	if !body.ReadUint8(&h.ChunkLog2) || !body.CopyBytes(h.Salt[:]) {
		return perr("header body truncated")
	}
	if h.ChunkLog2 != ChunkLog2 {
		return perr("unsupported chunk size 2^%d", h.ChunkLog2)
	}
	var stanzas, exts cryptobyte.String
	if !body.ReadUint24LengthPrefixed(&stanzas) || !body.ReadUint16LengthPrefixed(&exts) {
		return perr("header body truncated")
	}
	if !body.Empty() {
		return perr("trailing data in header body")
	}
	if err := h.parseStanzas(stanzas); err != nil {
		return err
	}
	return h.parseExtensions(exts)
}

// parseStanzas parses the stanza list: at least one, at most MaxStanzas,
// no two of one type for one key.
func (h *Header) parseStanzas(stanzas cryptobyte.String) error {
	for !stanzas.Empty() {
		if len(h.Stanzas) == MaxStanzas {
			return perr("more than %d recipient stanzas", MaxStanzas)
		}
		st := &Stanza{}
		var b cryptobyte.String
		if !stanzas.ReadUint8(&st.Type) || !stanzas.CopyBytes(st.KeyID[:]) || !stanzas.ReadUint16LengthPrefixed(&b) {
			return perr("recipient stanza truncated")
		}
		st.Body = append([]byte(nil), b...)
		h.Stanzas = append(h.Stanzas, st)
	}
	if len(h.Stanzas) == 0 {
		return perr("no recipient stanzas")
	}
	seen := make(map[[KeyIDLen + 1]byte]bool, len(h.Stanzas))
	for _, st := range h.Stanzas {
		var k [KeyIDLen + 1]byte
		k[0] = st.Type
		copy(k[1:], st.KeyID[:])
		if seen[k] {
			return perr("two recipient stanzas of one type for key %x", st.KeyID)
		}
		seen[k] = true
	}
	return nil
}

// parseExtensions parses the extension list: strictly increasing types,
// the sender's understood, unknown critical ones refused, unknown
// non-critical ones kept.
func (h *Header) parseExtensions(exts cryptobyte.String) error {
	var last uint16
	for i := 0; !exts.Empty(); i++ {
		var typ uint16
		var v cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&v) {
			return perr("extension truncated")
		}
		if i > 0 && typ <= last {
			return perr("extensions out of order or repeated")
		}
		last = typ
		switch {
		case typ == ExtSender:
			snd, err := parseSender(v)
			if err != nil {
				return err
			}
			h.Sender = snd
		case typ&CriticalBit != 0:
			return perr("unknown critical extension %#04x", typ)
		default:
			h.Unknown = append(h.Unknown, Extension{Type: typ, Value: append([]byte(nil), v...)})
		}
	}
	return h.checkPreviousSender()
}

// checkPreviousSender refuses a previous-sender extension that is
// malformed, or in an envelope without a sender extension, where anyone
// could have written it (FORMAT.md 2.4).
func (h *Header) checkPreviousSender() error {
	p, err := h.PreviousSender()
	if err == nil && p != nil && h.Sender == nil {
		err = perr("previous-sender extension in an unsigned envelope (anyone could have written it)")
	}
	return err
}

func parseSender(v cryptobyte.String) (*Sender, error) {
	if len(v) != senderBodyLen {
		return nil, perr("sender extension has length %d, want %d", len(v), senderBodyLen)
	}
	s := &Sender{}
	v.CopyBytes(s.KeyID[:])
	v.ReadUint8(&s.SigAlg)
	v.ReadUint16(&s.SigLen)
	v.ReadUint64(&s.StreamID)
	v.ReadUint64(&s.Serial)
	v.ReadUint64(&s.Timestamp)
	switch {
	case s.Serial == 0:
		return nil, perr("sender extension names serial 0 (serials start at 1)")
	case s.Timestamp >= MaxTimestamp:
		return nil, perr("sender extension has an impossible timestamp (%d ms: the year 10000 or later)", s.Timestamp)
	}
	switch s.SigAlg {
	case SigECDSAP256SHA256:
		if s.SigLen != 64 {
			return nil, perr("ECDSA P-256 signature length %d, want 64", s.SigLen)
		}
	case SigRSAPSSSHA256:
		if s.SigLen < 256 || s.SigLen > 512 {
			return nil, perr("RSA-PSS signature length %d out of range", s.SigLen)
		}
	default:
		return nil, perr("unknown signature algorithm %d", s.SigAlg)
	}
	return s, nil
}

// IsArmored reports whether peek, the first bytes of an envelope, open the
// ASCII armor rather than the binary form.
func IsArmored(peek []byte) bool {
	return bytes.HasPrefix(peek, []byte(ArmorBegin))
}
