package cms

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
)

// Streaming AES-GCM for one long message (NIST SP 800-38D with a 96-bit
// IV, no additional data, a 128-bit tag: what RFC 5084 puts in CMS).
//
// crypto/cipher seals whole messages only. GCM is CTR mode plus GHASH, so
// this file runs them separately, each with the standard library's
// assembly: CTR from cipher.NewCTR starting at J0+1 (NewCTR increments
// all 128 bits where GCM increments the low 32, which agree below 2^32
// blocks, the GCM limit enforced here), and GHASH by sealing each chunk as
// additional data with an empty plaintext under the same key:
//
//	Seal(nonce, plaintext = "", aad = C) = GHASH_H(C || L) xor E_K(J0),   L = [8*len(C)]_64 || [0]_64
//
// GHASH_H(X_1..X_m) = sum X_i * H^(m-i+1), so with Z the running GHASH
// state multiplied by H, a chunk of n blocks updates it as
//
//	Z' = Z * H^n  xor  Seal(...) xor E_K(J0) xor L*H
//
// and the tag is Z xor [0]_64||[8*len]_64 * H xor E_K(J0). Every chunk
// but the last must be a multiple of 16 bytes, the only place GCM pads.
// The few multiplications in GF(2^128) per chunk are done in constant
// time in pure Go; crypto/cipher does the bulk.

const (
	gcmNonceSize = 12
	gcmTagSize   = 16
	// gcmMaxBytes is GCM's limit on the plaintext of one message with a
	// 96-bit IV: 2^32 - 2 blocks.
	gcmMaxBytes = (1<<32 - 2) * 16
)

// gf is an element of GF(2^128) in GCM's bit order: hi holds bytes 0..7
// of the block big-endian, lo bytes 8..15.
type gf struct{ hi, lo uint64 }

func gfLoad(b []byte) gf {
	return gf{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])}
}

func (x gf) store(b []byte) {
	binary.BigEndian.PutUint64(b, x.hi)
	binary.BigEndian.PutUint64(b[8:], x.lo)
}

func (x gf) xor(y gf) gf { return gf{x.hi ^ y.hi, x.lo ^ y.lo} }

// gfMul multiplies in constant time (SP 800-38D, algorithm 1).
func gfMul(x, y gf) gf {
	var z gf
	v := y
	for i := 0; i < 128; i++ {
		var bit uint64
		if i < 64 {
			bit = x.hi >> (63 - i) & 1
		} else {
			bit = x.lo >> (127 - i) & 1
		}
		m := -bit
		z.hi ^= v.hi & m
		z.lo ^= v.lo & m
		lsb := v.lo & 1
		v.lo = v.lo>>1 | v.hi<<63
		v.hi = v.hi>>1 ^ 0xe100000000000000&-lsb
	}
	return z
}

// gfPow returns x^n (n >= 1).
func gfPow(x gf, n uint64) gf {
	r := gf{hi: 1 << 63} // the multiplicative identity
	for ; n > 0; n >>= 1 {
		if n&1 != 0 {
			r = gfMul(r, x)
		}
		x = gfMul(x, x)
	}
	return r
}

type gcmStream struct {
	ctr    cipher.Stream
	aead   cipher.AEAD
	nonce  [gcmNonceSize]byte
	ej0    gf
	h      gf
	z      gf     // GHASH state times H
	n      uint64 // bytes hashed
	ended  bool   // a chunk that was not a multiple of 16 bytes was hashed
	tagBuf [gcmTagSize]byte

	powN    uint64 // cache: H^powN = pow
	pow     gf
	lenN    uint64 // cache: L(lenN)*H = lenH
	lenH    gf
	scratch []byte
}

func newGCMStream(key, nonce []byte) (*gcmStream, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	g := &gcmStream{aead: aead}
	copy(g.nonce[:], nonce)
	var b [16]byte
	block.Encrypt(b[:], b[:])
	g.h = gfLoad(b[:])
	// E_K(J0) is the tag of the empty message.
	g.ej0 = gfLoad(aead.Seal(nil, nonce, nil, nil))
	var iv [16]byte
	copy(iv[:], nonce)
	iv[15] = 2 // J0 + 1
	g.ctr = cipher.NewCTR(block, iv[:])
	return g, nil
}

// hash adds ciphertext c to GHASH.
func (g *gcmStream) hash(c []byte) {
	if len(c) == 0 {
		return
	}
	if g.ended {
		panic("cms: GCM chunk after a partial chunk")
	}
	if len(c)%16 != 0 {
		g.ended = true
	}
	g.n += uint64(len(c))
	nb := uint64(len(c)+15) / 16
	if g.powN != nb {
		g.powN, g.pow = nb, gfPow(g.h, nb)
	}
	bits := uint64(len(c)) * 8
	if g.lenN != bits {
		g.lenN, g.lenH = bits, gfMul(gf{hi: bits}, g.h)
	}
	g.scratch = g.aead.Seal(g.scratch[:0], g.nonce[:], nil, c)
	s := gfLoad(g.scratch).xor(g.ej0).xor(g.lenH)
	g.z = gfMul(g.z, g.pow).xor(s)
}

// encrypt encrypts src into dst (which may be src) and hashes it.
func (g *gcmStream) encrypt(dst, src []byte) {
	g.ctr.XORKeyStream(dst[:len(src)], src)
	g.hash(dst[:len(src)])
}

// decrypt hashes src and decrypts it into dst (which may be src).
func (g *gcmStream) decrypt(dst, src []byte) {
	g.hash(src)
	g.ctr.XORKeyStream(dst[:len(src)], src)
}

// tag returns the authentication tag of everything hashed.
func (g *gcmStream) tag() []byte {
	t := g.z.xor(gfMul(gf{lo: g.n * 8}, g.h)).xor(g.ej0)
	t.store(g.tagBuf[:])
	return g.tagBuf[:]
}

// verify compares the tag in constant time.
func (g *gcmStream) verify(tag []byte) bool {
	return len(tag) == gcmTagSize && subtle.ConstantTimeCompare(g.tag(), tag) == 1
}
