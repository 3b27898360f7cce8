// Package envelope implements the tokenseal envelope: a file encrypted on
// the host under a fresh random file key, wrapped for one or more
// recipients whose private keys live on PKCS#11 tokens. FORMAT.md beside
// this file is the contract; this package is one implementation of it.
//
// A [Recipient] wraps a file key for one public key; an [Identity] unwraps
// one. This package never talks to a token: it sees one only through
// [RSAKey] and [ECDHKey], which the token package satisfies, and
// [NewSoftwareIdentity] satisfies in software.
//
// [Seal] returns a writer that encrypts a stream; [Open] returns a reader
// that decrypts one, releasing each 64 KiB chunk only once it
// authenticated: io.EOF means the whole payload (and the signature, if
// signed) verified. A caller that must never expose a prefix of a
// tampered message writes to a temporary place and commits after io.EOF;
// package receive does that, with replay protection.
package envelope

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/tokenseal/tokenseal/envelope/internal/format"
	"github.com/tokenseal/tokenseal/envelope/internal/stream"
)

// fileKeySize is the size of the random key each envelope is sealed under.
const fileKeySize = 32

// A Stanza is one recipient's wrapped copy of the file key, as the header
// carries it (FORMAT.md, sections 2 and 4).
type Stanza struct {
	Type  uint8  // 1 RSA-OAEP, 2 ECDH P-256, 3 ECDH P-384; others are skipped
	KeyID KeyID  // the recipient's key identifier
	Body  []byte // the wrapped file key, in the type's encoding
}

func (s *Stanza) wire() *format.Stanza {
	return &format.Stanza{Type: s.Type, KeyID: s.KeyID, Body: s.Body}
}

func stanzasOf(h *format.Header) []*Stanza {
	out := make([]*Stanza, len(h.Stanzas))
	for i, s := range h.Stanzas {
		out[i] = &Stanza{Type: s.Type, KeyID: s.KeyID, Body: s.Body}
	}
	return out
}

// stanzaKey is what makes two stanzas the same recipient's.
func stanzaKey(typ uint8, id KeyID) [33]byte {
	k := [33]byte{typ}
	copy(k[1:], id[:])
	return k
}

// KeyID is the SHA-256 digest of a public key's DER SubjectPublicKeyInfo,
// computed by [KeyIDOf]. Stanzas and senders name their keys by it; keys
// provisioned by tokenseal carry it as their CKA_ID.
type KeyID [32]byte

func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

// A Recipient wraps a file key for one public key.
type Recipient interface {
	// Wrap returns a stanza carrying fileKey for this recipient. It must
	// not retain fileKey.
	Wrap(fileKey []byte) (*Stanza, error)
}

// An Identity unwraps a file key.
type Identity interface {
	// Unwrap returns the file key from the stanza addressed to this
	// identity. It returns an error wrapping ErrIncorrectIdentity when no
	// stanza is addressed to it, and any other error when one is but could
	// not be unwrapped; the caller stops at that error.
	Unwrap(stanzas []*Stanza) ([]byte, error)
}

// Errors a caller can check with errors.Is and errors.As. Every error that
// means "this envelope is rejected" wraps ErrRejected.
var (
	// ErrRejected is wrapped by every error about the envelope itself, as
	// opposed to errors of the token, the file system or the caller.
	ErrRejected = errors.New("envelope rejected")

	// ErrIncorrectIdentity is returned by an Identity for stanzas that are
	// not addressed to it.
	ErrIncorrectIdentity = errors.New("no stanza addressed to this identity")

	// ErrHeaderAuth means the header MAC did not verify under the unwrapped
	// file key: the header was changed, or the stanza was crafted.
	ErrHeaderAuth = rejected("header authentication failed")

	// ErrPayloadAuth means a payload chunk failed to authenticate: the
	// payload was changed, reordered, truncated or extended.
	ErrPayloadAuth = rejected("payload authentication failed (tampered or truncated)")

	// ErrUnwrap means a stanza addressed to the identity did not yield a
	// valid file key.
	ErrUnwrap = rejected("wrapped key did not unwrap: not addressed to this key or corrupted")

	// ErrSignature means the sender's signature did not verify.
	ErrSignature = rejected("sender signature does not verify")

	// ErrUnsigned is returned by Open for an anonymous envelope when
	// OpenOptions.RefuseAnonymous is set.
	ErrUnsigned = rejected("envelope is not signed (anonymous)")

	// ErrUnknownSender is what OpenOptions.Senders returns for a key it
	// does not trust; Open turns it into an *UnknownSenderError.
	ErrUnknownSender = errors.New("unknown sender")

	// ErrNoRecipientsLeft is returned when a rewrap would remove every
	// recipient.
	ErrNoRecipientsLeft = errors.New("rewrap would leave no recipients")
)

type rejectedError struct{ msg string }

func (e *rejectedError) Error() string        { return e.msg }
func (e *rejectedError) Is(target error) bool { return target == ErrRejected }

func rejected(msg string) error { return &rejectedError{msg} }

// ParseError reports a malformed envelope: a header or armor that
// FORMAT.md does not allow. It matches ErrRejected.
type ParseError struct {
	What string // what is wrong, for people
	err  *format.ParseError
}

func (e *ParseError) Error() string        { return "malformed envelope: " + e.What }
func (e *ParseError) Is(target error) bool { return target == ErrRejected }
func (e *ParseError) Unwrap() error {
	if e.err == nil { // a ParseError made by a caller
		return nil
	}
	return e.err
}

// NoIdentityMatchError is returned by Open when no identity can unwrap any
// stanza. KeyIDs are the key identifiers the envelope was addressed to;
// its message names the first few (a header may hold 4096).
type NoIdentityMatchError struct {
	KeyIDs []KeyID
}

// maxNamedKeyIDs bounds the key identifiers NoIdentityMatchError's
// message names.
const maxNamedKeyIDs = 4

func (e *NoIdentityMatchError) Error() string {
	n := min(len(e.KeyIDs), maxNamedKeyIDs)
	ids := make([]string, n, n+1)
	for i, id := range e.KeyIDs[:n] {
		ids[i] = id.String()
	}
	if more := len(e.KeyIDs) - n; more > 0 {
		ids = append(ids, fmt.Sprintf("and %d more", more))
	}
	return "envelope is not addressed to any available key; it is addressed to " + strings.Join(ids, ", ")
}

func (e *NoIdentityMatchError) Is(target error) bool { return target == ErrRejected }

// wrapReject turns a format error into a ParseError.
func wrapReject(err error) error {
	var pe *format.ParseError
	if errors.As(err, &pe) {
		return &ParseError{What: pe.What, err: pe}
	}
	return err
}

// keys derived from the file key
type keySchedule struct {
	header  []byte
	payload []byte
}

func deriveKeys(fileKey []byte, salt []byte) (*keySchedule, error) {
	hk, err := hkdf.Key(sha256.New, fileKey, salt, "tokenseal/v1 header", 32)
	if err != nil {
		return nil, err
	}
	pk, err := hkdf.Key(sha256.New, fileKey, salt, "tokenseal/v1 payload", 32)
	if err != nil {
		return nil, err
	}
	return &keySchedule{header: hk, payload: pk}, nil
}

func (k *keySchedule) wipe() {
	clear(k.header)
	clear(k.payload)
}

func headerMAC(key, covered []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(covered)
	return m.Sum(nil)
}

// SealOptions change how Seal works. The zero value seals an anonymous,
// binary envelope with crypto/rand.
type SealOptions struct {
	// Armor writes the ASCII armor instead of the binary form.
	Armor bool
	// Rand is the source of the file key, the salt and ephemeral keys.
	// Nil means crypto/rand.Reader.
	Rand io.Reader
	// Sender, when set, signs the envelope and stamps it with a serial
	// number and a timestamp.
	Sender *Sender
}

// Seal returns a WriteCloser that encrypts to recipients what is written
// to it, writing the envelope to dst. Close must be called, and its error
// checked: it writes the last chunk. Close does not close dst.
func Seal(dst io.Writer, recipients []Recipient, opts *SealOptions) (io.WriteCloser, error) {
	if opts == nil {
		opts = &SealOptions{}
	}
	rnd := randReader(opts.Rand)
	if len(recipients) == 0 {
		return nil, errors.New("no recipients")
	}
	if len(recipients) > format.MaxStanzas {
		return nil, fmt.Errorf("too many recipients: %d, the limit is %d", len(recipients), format.MaxStanzas)
	}
	fileKey := make([]byte, fileKeySize)
	defer clear(fileKey)
	if _, err := io.ReadFull(rnd, fileKey); err != nil {
		return nil, fmt.Errorf("generating file key: %w", err)
	}
	h, err := sealHeader(fileKey, recipients, opts.Sender, rnd)
	if err != nil {
		return nil, err
	}
	ks, err := deriveKeys(fileKey, h.Salt[:])
	if err != nil {
		return nil, err
	}
	defer ks.wipe()
	out, armor, raw, err := writeHeader(dst, h, ks, opts.Armor)
	if err != nil {
		return nil, err
	}
	w, err := stream.NewWriter(ks.payload, out)
	if err != nil {
		return nil, err
	}
	sw := &sealWriter{w: w, armor: armor, out: out}
	if h.Sender != nil {
		// The chunk digests of FORMAT.md 6.2, computed by whichever
		// goroutine seals each chunk.
		w.Digests = stream.NewDigests()
		sw.sig = newSigning(opts.Sender, h.Sender, raw, w.Digests, rnd)
	}
	return sw, nil
}

// sealHeader is a new envelope's header, its MAC not yet set: a fresh
// salt, a stanza per recipient, and the sender's extension.
func sealHeader(fileKey []byte, recipients []Recipient, sender *Sender, rnd io.Reader) (*format.Header, error) {
	h := &format.Header{Version: format.Version, ChunkLog2: format.ChunkLog2}
	if sender != nil {
		ext, err := sender.extension()
		if err != nil {
			return nil, err
		}
		h.Sender = ext
	}
	if _, err := io.ReadFull(rnd, h.Salt[:]); err != nil {
		return nil, fmt.Errorf("generating salt: %w", err)
	}
	set := stanzaSet{h: h}
	if _, err := set.wrap(fileKey, recipients); err != nil {
		return nil, err
	}
	return h, nil
}

// stanzaSet adds stanzas to a header, one per recipient: the same
// recipient given twice (same type and key identifier) is kept once.
type stanzaSet struct {
	h    *format.Header
	seen map[[33]byte]bool
}

// add adds s unless its recipient has a stanza already, and says which.
func (set *stanzaSet) add(s *format.Stanza) bool {
	if set.seen == nil {
		set.seen = map[[33]byte]bool{}
	}
	k := stanzaKey(s.Type, s.KeyID)
	if set.seen[k] {
		return false
	}
	set.seen[k] = true
	set.h.Stanzas = append(set.h.Stanzas, s)
	return true
}

// wrap adds a stanza of fileKey for each recipient, and counts the new
// ones.
func (set *stanzaSet) wrap(fileKey []byte, recipients []Recipient) (int, error) {
	added := 0
	for _, r := range recipients {
		s, err := r.Wrap(fileKey)
		if err != nil {
			return 0, err
		}
		if set.add(s.wire()) {
			added++
		}
	}
	return added, nil
}

// writeHeader sets h's MAC under ks and writes the header to dst,
// armored when asked. It returns the writer the rest of the envelope goes
// to, the armor to close after it (nil for the binary form) and the
// header's bytes.
func writeHeader(dst io.Writer, h *format.Header, ks *keySchedule, armored bool) (io.Writer, *format.ArmoredWriter, []byte, error) {
	covered, err := h.MarshalWithoutMAC()
	if err != nil {
		return nil, nil, nil, err
	}
	copy(h.MAC[:], headerMAC(ks.header, covered))
	raw := append(covered, h.MAC[:]...)
	out := dst
	var armor *format.ArmoredWriter
	if armored {
		armor = format.NewArmoredWriter(dst)
		out = armor
	}
	if _, err := out.Write(raw); err != nil {
		return nil, nil, nil, err
	}
	return out, armor, raw, nil
}

// signing is the sender's signature of one envelope in the making (of
// version 2): its header, and the digests of the chunks as they are
// written.
type signing struct {
	sender *Sender
	ext    *format.Sender
	digest signedDigest
	rand   io.Reader
}

func newSigning(sender *Sender, ext *format.Sender, header []byte, chunks *stream.Digests, rnd io.Reader) *signing {
	return &signing{sender: sender, ext: ext, digest: signedDigest{header: sha256.Sum256(header), chunks: chunks}, rand: rnd}
}

// write appends the signature trailer to out.
func (s *signing) write(out io.Writer) error {
	sig, err := s.sender.sign(s.rand, s.ext, s.digest.sum())
	if err != nil {
		return err
	}
	_, err = out.Write(sig)
	return err
}

type sealWriter struct {
	w     *stream.Writer
	armor *format.ArmoredWriter
	out   io.Writer
	sig   *signing // nil for an anonymous envelope
}

func (s *sealWriter) Write(p []byte) (int, error) { return s.w.Write(p) }

// ReadFrom seals everything src yields, reading, encrypting and writing
// in parallel; io.Copy uses it. The output is the same as Write's.
func (s *sealWriter) ReadFrom(src io.Reader) (int64, error) { return s.w.ReadFrom(src) }

func (s *sealWriter) Close() error {
	if err := s.w.Close(); err != nil {
		return err
	}
	if s.sig != nil {
		if err := s.sig.write(s.out); err != nil {
			return err
		}
	}
	if s.armor != nil {
		return s.armor.Close()
	}
	return nil
}

// Opened describes an envelope whose header authenticated.
type Opened struct {
	// KeyID names the stanza that was unwrapped.
	KeyID KeyID
	// Armored is true when the input was ASCII armored.
	Armored bool
	// Sender is what the envelope says about its sender, nil for an
	// anonymous envelope. It is authenticated only once the Reader has
	// returned io.EOF.
	Sender *SenderInfo
	// SenderKey is the trusted public key that Sender.KeyID resolved to,
	// nil for an anonymous envelope. The signature is checked against it
	// when the Reader reaches io.EOF, not before.
	SenderKey crypto.PublicKey
	// PreviousSender, set on a rewrapped envelope whose original was
	// signed, is who signed it before: the rewrapping sender's statement.
	PreviousSender *PreviousSenderInfo
}

func randReader(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}

// OpenOptions change how Open works. The zero value accepts anonymous
// envelopes and refuses signed ones, whose senders it cannot know.
type OpenOptions struct {
	// Senders returns the public key of a trusted sender, or an error
	// wrapping ErrUnknownSender. Nil trusts nobody.
	Senders func(KeyID) (crypto.PublicKey, error)
	// RefuseAnonymous refuses envelopes without a sender signature.
	RefuseAnonymous bool
}

// Reader decrypts an envelope's payload. See the package documentation for
// what it guarantees.
type Reader struct {
	Opened
	r   *stream.Reader
	err error
	sig *signedDigest  // what the signature covers; nil when anonymous
	snd *format.Sender // as the header has it, for the signature check
	// signed: the digest the signature verified over, set at io.EOF
	signed []byte
}

// Read returns authenticated plaintext. Every error after the first is the
// first; any error other than io.EOF means the envelope is to be rejected.
// For a signed envelope, io.EOF also means the signature verified.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.r.Read(p)
	if err != nil {
		switch {
		case err == io.EOF:
			err = r.finish()
		default:
			err = payloadError(err)
		}
		r.err = err
	}
	return n, err
}

// WriteTo writes the rest of the plaintext to dst, reading, decrypting
// and writing in parallel; io.Copy uses it. It returns nil exactly when
// Read would have reached io.EOF, with the same guarantees.
func (r *Reader) WriteTo(dst io.Writer) (int64, error) {
	if r.err != nil {
		if r.err == io.EOF {
			return 0, nil
		}
		return 0, r.err
	}
	n, err := r.r.WriteTo(dst)
	switch {
	case err == nil:
		err = r.finish()
	default:
		err = payloadError(err)
	}
	r.err = err
	if err == io.EOF {
		return n, nil
	}
	return n, err
}

// payloadError is the Reader's error for an error of the payload stream.
func payloadError(err error) error {
	switch {
	case errors.Is(err, stream.ErrAuth), errors.Is(err, stream.ErrTruncated):
		return ErrPayloadAuth
	case errors.Is(err, stream.ErrTrailerTruncated):
		return errTrailerTruncated
	}
	return wrapReject(err)
}

func (r *Reader) finish() error {
	if r.sig == nil {
		return io.EOF
	}
	d := r.sig.sum()
	if !verify(r.SenderKey, r.snd, d, r.r.Trailer()) {
		return ErrSignature
	}
	r.signed = d
	return io.EOF
}

// Signed returns what identifies a signed envelope byte for byte, once
// the Reader has returned io.EOF (the signature verified): the digest d
// its signature covers (FORMAT.md section 6, either version: d commits to
// the header and every payload byte) and the signature, the trailer. ok is
// false for an anonymous envelope and before io.EOF. Both are what the
// reader already has for the signature: asking costs no second pass. (The
// replay ledger keeps state.EnvelopeDigest of them.)
func (r *Reader) Signed() (digest [32]byte, signature []byte, ok bool) {
	if r.signed == nil {
		return digest, nil, false
	}
	return [32]byte(r.signed), bytes.Clone(r.r.Trailer()), true
}

// Open reads an envelope's header from src, binary or armored, checks the
// sender against opts, finds a stanza that one of identities can unwrap,
// checks the header MAC and returns a Reader of the payload. The first
// stanza that one of identities recognises decides (FORMAT.md, section 2).
// The steps run in the order of FORMAT.md 2.5, and the first that fails
// is the error: Open returns those of steps 1 to 4, the Reader those of
// the payload and the signature. opts may be nil.
func Open(src io.Reader, identities []Identity, opts *OpenOptions) (*Reader, error) {
	o, err := openHeader(src, identities, opts)
	if err != nil {
		return nil, err
	}
	defer o.wipe()
	return o.reader(nil)
}

// unarmor returns the binary envelope of src, armored or not.
// The binary form needs a buffer for the header only: the payload's
// reads are bigger than the buffer, and bufio hands them to src directly.
// A small one costs a batch of small envelopes nothing; the armor has a
// buffer of its own.
func unarmor(src io.Reader) (io.Reader, bool) {
	br := bufio.NewReaderSize(src, 4<<10)
	peek, _ := br.Peek(len(format.ArmorBegin))
	if format.IsArmored(peek) {
		return bufio.NewReaderSize(format.NewArmoredReader(br), 4<<10), true
	}
	return br, false
}

// opened is an envelope whose header authenticated under its file key.
type opened struct {
	h         *format.Header
	raw       []byte
	in        io.Reader // positioned at the payload
	armored   bool
	keyID     KeyID
	senderKey crypto.PublicKey
	prev      *PreviousSenderInfo
	fileKey   []byte
	ks        *keySchedule
}

func (o *opened) wipe() {
	clear(o.fileKey)
	o.ks.wipe()
}

func openHeader(src io.Reader, identities []Identity, opts *OpenOptions) (*opened, error) {
	if opts == nil {
		opts = &OpenOptions{}
	}
	in, armored := unarmor(src)
	h, raw, err := format.ReadHeader(in)
	if err != nil {
		return nil, wrapReject(err)
	}
	o := &opened{h: h, raw: raw, in: in, armored: armored}
	prev, err := h.PreviousSender()
	if err != nil {
		return nil, wrapReject(err)
	}
	o.prev = previousSenderInfo(prev)
	if h.Sender == nil {
		if opts.RefuseAnonymous {
			return nil, ErrUnsigned
		}
	} else {
		// Who signed is checked before the token does any work.
		if opts.Senders == nil {
			return nil, &UnknownSenderError{h.Sender.KeyID}
		}
		pub, err := opts.Senders(h.Sender.KeyID)
		if errors.Is(err, ErrUnknownSender) {
			return nil, &UnknownSenderError{h.Sender.KeyID}
		}
		if err != nil {
			return nil, err
		}
		if id, err := KeyIDOf(pub); err != nil || id != h.Sender.KeyID {
			return nil, errors.New("trusted sender's key does not match its key identifier")
		}
		o.senderKey = pub
	}
	fileKey, keyID, err := unwrap(h, identities)
	if err != nil {
		return nil, err
	}
	ks, err := deriveKeys(fileKey, h.Salt[:])
	if err != nil {
		clear(fileKey)
		return nil, err
	}
	o.fileKey, o.ks, o.keyID = fileKey, ks, keyID
	want := headerMAC(ks.header, raw[:len(raw)-format.MACLen])
	if !hmac.Equal(want, h.MAC[:]) {
		o.wipe()
		return nil, ErrHeaderAuth
	}
	return o, nil
}

func (o *opened) info() Opened {
	return Opened{KeyID: o.keyID, Armored: o.armored, Sender: senderInfo(o.h.Sender), SenderKey: o.senderKey, PreviousSender: o.prev}
}

// reader returns the payload Reader. tee, when not nil, receives every
// payload byte (ciphertext) as it is read. A signed envelope's reader
// computes what its version's signature covers (FORMAT.md section 6):
// the payload's SHA-256 in version 1, the chunk digests in version 2.
func (o *opened) reader(tee io.Writer) (*Reader, error) {
	res := &Reader{Opened: o.info()}
	sr, err := stream.NewReader(o.ks.payload, o.in, o.h.TrailerLen())
	if err != nil {
		return nil, err
	}
	sr.Tee = tee
	if o.h.Sender != nil {
		res.snd = o.h.Sender
		res.sig = &signedDigest{header: sha256.Sum256(o.raw)}
		if o.h.Version == format.Version1 {
			res.sig.payload = sha256.New()
			sr.Hash = res.sig.payload
		} else {
			res.sig.chunks = stream.NewDigests()
			sr.Digests = res.sig.chunks
		}
	}
	res.r = sr
	return res, nil
}

// unwrap offers the stanzas, in order, to the identities. The first
// stanza some identity recognises decides, as FORMAT.md requires: if it
// does not unwrap, the envelope is refused and later stanzas are not tried.
func unwrap(h *format.Header, identities []Identity) ([]byte, KeyID, error) {
	stanzas := stanzasOf(h)
	for _, s := range stanzas {
		for _, id := range identities {
			fk, err := id.Unwrap([]*Stanza{s})
			if errors.Is(err, ErrIncorrectIdentity) {
				continue
			}
			if err != nil {
				return nil, KeyID{}, err
			}
			if len(fk) != fileKeySize {
				clear(fk)
				return nil, KeyID{}, ErrUnwrap
			}
			return fk, s.KeyID, nil
		}
	}
	e := &NoIdentityMatchError{}
	for _, s := range stanzas {
		e.KeyIDs = append(e.KeyIDs, s.KeyID)
	}
	return nil, KeyID{}, e
}
