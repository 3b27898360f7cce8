package reference

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"fmt"
)

// KeyID is SHA-256 of the DER SubjectPublicKeyInfo (section 2).
func KeyID(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(der)
	return sum[:]
}

// DeriveKeys derives K_header and K_payload from the file key (section 3).
func DeriveKeys(fk, salt []byte) (kHeader, kPayload []byte) {
	kHeader, err := hkdf.Key(sha256.New, fk, salt, InfoHeader, 32)
	if err != nil {
		panic(err)
	}
	kPayload, err = hkdf.Key(sha256.New, fk, salt, InfoPayload, 32)
	if err != nil {
		panic(err)
	}
	return kHeader, kPayload
}

// Curve is what section 4.2 says of one curve.
type Curve struct {
	Type     byte
	Curve    ecdh.Curve
	Label    string
	PointLen int // uncompressed
	Size     int // of a scalar and a coordinate
}

// CurveOf returns the stanza curve of c.
func CurveOf(c elliptic.Curve) (Curve, error) {
	switch c {
	case elliptic.P256():
		return Curve{TypeP256, ecdh.P256(), LabelP256, 65, 32}, nil
	case elliptic.P384():
		return Curve{TypeP384, ecdh.P384(), LabelP384, 97, 48}, nil
	}
	return Curve{}, fmt.Errorf("reference: unsupported curve %s", c.Params().Name)
}

// X963 is the ANSI X9.63 KDF with SHA-256 for one 32-byte block with the
// given counter (section 4.2 uses 1).
func X963(z []byte, counter uint32, sharedInfo []byte) []byte {
	h := sha256.New()
	h.Write(z)
	h.Write(binary.BigEndian.AppendUint32(nil, counter))
	h.Write(sharedInfo)
	return h.Sum(nil)
}

// Nonce is chunk i's nonce (section 5): u88(i) || last flag.
func Nonce(i uint64, last bool) []byte {
	n := make([]byte, 12)
	binary.BigEndian.PutUint64(n[3:11], i) // the top three bytes stay zero
	if last {
		n[11] = 0x01
	}
	return n
}

// GCM is AES-256-GCM under k.
func GCM(k []byte) cipher.AEAD {
	b, err := aes.NewCipher(k)
	if err != nil {
		panic(err)
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	return a
}

// SealChunk seals chunk i of the payload.
func SealChunk(kPayload []byte, i uint64, last bool, pt []byte) []byte {
	return GCM(kPayload).Seal(nil, Nonce(i, last), pt, nil)
}

// EncryptPayload encrypts pt in chunks of 64 KiB, the last one flagged;
// an empty pt is one empty final chunk.
func EncryptPayload(kPayload, pt []byte) []byte {
	if len(pt) == 0 {
		return SealChunk(kPayload, 0, true, nil)
	}
	var out []byte
	for i := uint64(0); len(pt) > 0; i++ {
		n := min(len(pt), ChunkSize)
		out = append(out, SealChunk(kPayload, i, n == len(pt), pt[:n])...)
		pt = pt[n:]
	}
	return out
}

// Chunks cuts a payload into its chunks (section 5): while more than
// 65552 bytes remain, the next 65552 are a non-final chunk; what remains
// then is the final chunk. It refuses a final chunk shorter than a tag
// and an empty final chunk that is not chunk 0.
func Chunks(payload []byte) ([][]byte, error) {
	var chunks [][]byte
	for len(payload) > ChunkWire {
		chunks = append(chunks, payload[:ChunkWire])
		payload = payload[ChunkWire:]
	}
	i := len(chunks)
	if len(payload) < TagSize {
		return nil, fmt.Errorf("reference: final chunk %d is %d bytes, shorter than a tag", i, len(payload))
	}
	if len(payload) == TagSize && i > 0 {
		return nil, fmt.Errorf("reference: empty final chunk %d is not chunk 0", i)
	}
	return append(chunks, payload), nil
}

// DecryptPayload decrypts a whole payload (section 5), framed by Chunks.
func DecryptPayload(kPayload, payload []byte) ([]byte, error) {
	chunks, err := Chunks(payload)
	if err != nil {
		return nil, err
	}
	aead := GCM(kPayload)
	out := []byte{}
	for i, c := range chunks {
		last := i == len(chunks)-1
		pt, err := aead.Open(nil, Nonce(uint64(i), last), c, nil)
		if err != nil {
			return nil, fmt.Errorf("reference: chunk %d (last=%v) failed to authenticate", i, last)
		}
		out = append(out, pt...)
	}
	return out, nil
}
