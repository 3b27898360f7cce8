package envelope

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"

	"github.com/tokenseal/tokenseal/envelope/internal/format"
	"github.com/tokenseal/tokenseal/envelope/internal/stream"
)

// SenderInfo is what a signed envelope says about its sender
// (FORMAT.md, section 2.3).
type SenderInfo struct {
	KeyID    KeyID     // the signing key's identifier
	SigAlg   SigAlg    // how the trailer signs
	StreamID uint64    // the sender's stream: one per signing key and state directory
	Serial   uint64    // the envelope's number in the stream, from 1
	Time     time.Time // when it was sealed, to the millisecond
}

// PreviousSenderInfo is, on a rewrapped envelope whose original was
// signed, who had signed the original: the rewrapping sender's statement,
// not a signature of the original sender's.
type PreviousSenderInfo struct {
	KeyID    KeyID
	StreamID uint64
	Serial   uint64
	Time     time.Time
}

// SigAlg is a sender signature algorithm.
type SigAlg uint8

// The signature algorithms of FORMAT.md, section 6.
const (
	ECDSAP256SHA256 SigAlg = 1 // ECDSA on P-256 with SHA-256, low S
	RSAPSSSHA256    SigAlg = 2 // RSA-PSS with SHA-256 and a 32-byte salt
)

func (a SigAlg) String() string {
	switch a {
	case ECDSAP256SHA256:
		return "ECDSA-P256-SHA256"
	case RSAPSSSHA256:
		return "RSA-PSS-SHA256"
	}
	return fmt.Sprintf("SigAlg(%d)", uint8(a))
}

func senderInfo(s *format.Sender) *SenderInfo {
	if s == nil {
		return nil
	}
	return &SenderInfo{KeyID: s.KeyID, SigAlg: SigAlg(s.SigAlg), StreamID: s.StreamID, Serial: s.Serial, Time: time.UnixMilli(int64(s.Timestamp))}
}

func previousSenderInfo(p *format.PreviousSender) *PreviousSenderInfo {
	if p == nil {
		return nil
	}
	return &PreviousSenderInfo{KeyID: p.KeyID, StreamID: p.StreamID, Serial: p.Serial, Time: time.UnixMilli(int64(p.Timestamp))}
}

// Sender signs an envelope. The serial number must have been reserved
// durably before Seal is called (see the state package): Seal only
// writes what it is given.
type Sender struct {
	// Signer is a P-256 ECDSA key or an RSA key of 2048 to 4096 bits
	// (signing with RSA-PSS), typically on a token.
	Signer   crypto.Signer
	StreamID uint64
	Serial   uint64
	Time     time.Time
}

// UnknownSenderError is returned by Open for an envelope signed by a key
// the caller does not trust.
type UnknownSenderError struct{ KeyID KeyID }

func (e *UnknownSenderError) Error() string {
	return "envelope is signed by an untrusted key " + e.KeyID.String()
}

func (e *UnknownSenderError) Is(target error) bool { return target == ErrRejected }

// The signature contexts of FORMAT.md sections 6.1 and 6.2.
const (
	sigContextV1 = "tokenseal/v1 signature\x00"
	sigContextV2 = "tokenseal/v2 signature\x00"
)

// signedDigest is the digest d a sender signs (FORMAT.md section 6): of
// version 1 when payload is set (the whole payload's SHA-256), else of
// version 2 over the chunk digests.
type signedDigest struct {
	header  [32]byte  // SHA-256 of the header, MAC included
	payload hash.Hash // version 1: fed the payload
	chunks  *stream.Digests
}

// sum returns d.
func (s *signedDigest) sum() []byte {
	h := sha256.New()
	if s.payload != nil {
		h.Write([]byte(sigContextV1))
		h.Write(s.header[:])
		h.Write(s.payload.Sum(nil))
		return h.Sum(nil)
	}
	count, list := s.chunks.Sum()
	h.Write([]byte(sigContextV2))
	h.Write(s.header[:])
	h.Write(binary.BigEndian.AppendUint64(nil, count))
	h.Write(list[:])
	return h.Sum(nil)
}

// senderExtension fills the header's sender extension for s.
func (s *Sender) extension() (*format.Sender, error) {
	if s.Serial == 0 {
		return nil, errors.New("serial 0: serials start at 1")
	}
	pub := s.Signer.Public()
	id, err := KeyIDOf(pub)
	if err != nil {
		return nil, err
	}
	f := &format.Sender{KeyID: id, StreamID: s.StreamID, Serial: s.Serial, Timestamp: uint64(s.Time.UnixMilli())}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("signing keys must be P-256 or RSA")
		}
		f.SigAlg, f.SigLen = format.SigECDSAP256SHA256, 64
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return nil, fmt.Errorf("RSA signing key of %d bits: need %d to %d", bits, minRSABits, maxRSABits)
		}
		f.SigAlg, f.SigLen = format.SigRSAPSSSHA256, uint16(k.Size())
	default:
		return nil, fmt.Errorf("unsupported signing key type %T", pub)
	}
	return f, nil
}

// sign returns the trailer that signs d.
func (s *Sender) sign(rand io.Reader, f *format.Sender, d []byte) ([]byte, error) {
	switch f.SigAlg {
	case format.SigECDSAP256SHA256:
		der, err := s.Signer.Sign(rand, d, crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("signing: %w", err)
		}
		return ecdsaRaw(der)
	default:
		sig, err := s.Signer.Sign(rand, d, &rsa.PSSOptions{SaltLength: 32, Hash: crypto.SHA256})
		if err != nil {
			return nil, fmt.Errorf("signing: %w", err)
		}
		if len(sig) != int(f.SigLen) {
			return nil, fmt.Errorf("signing: signature of %d bytes, want %d", len(sig), f.SigLen)
		}
		return sig, nil
	}
}

// ecdsaRaw turns an ASN.1 ECDSA-Sig-Value into r || s of 32 bytes each.
func ecdsaRaw(der []byte) ([]byte, error) {
	var seq cryptobyte.String
	var r, s big.Int
	in := cryptobyte.String(der)
	if !in.ReadASN1(&seq, asn1.SEQUENCE) || !in.Empty() ||
		!seq.ReadASN1Integer(&r) || !seq.ReadASN1Integer(&s) || !seq.Empty() {
		return nil, errors.New("signing: malformed ECDSA signature from the signer")
	}
	if r.Sign() <= 0 || s.Sign() <= 0 || r.BitLen() > 256 || s.BitLen() > 256 {
		return nil, errors.New("signing: ECDSA signature out of range")
	}
	// Low-S form, so each signature has one encoding: (r, n-s) verifies
	// as well, and readers refuse it.
	n := elliptic.P256().Params().N
	if s.Cmp(new(big.Int).Rsh(n, 1)) > 0 {
		s.Sub(n, &s)
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out, nil
}

// verify reports whether sig is pub's signature of d, as f says it is
// made.
func verify(pub crypto.PublicKey, f *format.Sender, d, sig []byte) bool {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if f.SigAlg != format.SigECDSAP256SHA256 || k.Curve != elliptic.P256() || len(sig) != 64 {
			return false
		}
		r := new(big.Int).SetBytes(sig[:32])
		s := new(big.Int).SetBytes(sig[32:])
		if s.Cmp(new(big.Int).Rsh(k.Curve.Params().N, 1)) > 0 {
			return false // high S: not the canonical encoding
		}
		return ecdsa.Verify(k, d, r, s)
	case *rsa.PublicKey:
		bits := k.N.BitLen() // FORMAT.md 2, "RSA key sizes"
		if f.SigAlg != format.SigRSAPSSSHA256 || len(sig) != k.Size() || bits < minRSABits || bits > maxRSABits {
			return false
		}
		return rsa.VerifyPSS(k, crypto.SHA256, d, sig, &rsa.PSSOptions{SaltLength: 32, Hash: crypto.SHA256}) == nil
	}
	return false
}

var errTrailerTruncated = rejected("envelope truncated: the signature trailer is incomplete")
