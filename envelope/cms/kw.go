package cms

import (
	"crypto/aes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"hash"
)

// AES key wrap without padding (RFC 3394), the id-aes*-wrap algorithms
// of RFC 3565 that CMS key agreement uses, and the ANSI X9.63 KDF that RFC
// 5753 derives the key-encryption key with. (envelope/internal/kw has the
// padded variant, RFC 5649, and X9.63 with SHA-256 only.)

var kwIV = [8]byte{0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6}

// errKW is returned for every failed unwrap.
var errKW = errors.New("cms: key unwrap failed")

// aesWrap wraps p (a multiple of 8 bytes, at least 16) under kek.
func aesWrap(kek, p []byte) ([]byte, error) {
	if len(p) < 16 || len(p)%8 != 0 {
		return nil, errors.New("cms: key wrap input must be a multiple of 8 bytes, at least 16")
	}
	b, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	n := len(p) / 8
	out := make([]byte, 8+len(p))
	copy(out, kwIV[:])
	copy(out[8:], p)
	var blk [16]byte
	for j := 0; j < 6; j++ {
		for i := 1; i <= n; i++ {
			copy(blk[:8], out[:8])
			copy(blk[8:], out[8*i:8*i+8])
			b.Encrypt(blk[:], blk[:])
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(out[:8], binary.BigEndian.Uint64(blk[:8])^t)
			copy(out[8*i:], blk[8:])
		}
	}
	return out, nil
}

// aesUnwrap reverses aesWrap; every failure returns errKW.
func aesUnwrap(kek, c []byte) ([]byte, error) {
	if len(c) < 24 || len(c)%8 != 0 {
		return nil, errKW
	}
	b, err := aes.NewCipher(kek)
	if err != nil {
		return nil, errKW
	}
	n := len(c)/8 - 1
	out := make([]byte, len(c))
	copy(out, c)
	var blk [16]byte
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(blk[:8], binary.BigEndian.Uint64(out[:8])^t)
			copy(blk[8:], out[8*i:8*i+8])
			b.Decrypt(blk[:], blk[:])
			copy(out[:8], blk[:8])
			copy(out[8*i:], blk[8:])
		}
	}
	if subtle.ConstantTimeCompare(out[:8], kwIV[:]) != 1 {
		clear(out)
		return nil, errKW
	}
	p := make([]byte, len(c)-8)
	copy(p, out[8:])
	clear(out)
	return p, nil
}

// x963KDF returns n bytes of ANSI X9.63 KDF output:
// Hash(z || counter || sharedInfo) for counter = 1, 2, ... (32-bit
// big-endian), concatenated and truncated (SEC 1 section 3.6.1).
func x963KDF(newHash func() hash.Hash, z, sharedInfo []byte, n int) []byte {
	var out []byte
	var ctr [4]byte
	for i := uint32(1); len(out) < n; i++ {
		binary.BigEndian.PutUint32(ctr[:], i)
		h := newHash()
		h.Write(z)
		h.Write(ctr[:])
		h.Write(sharedInfo)
		out = h.Sum(out)
	}
	clear(out[n:])
	return out[:n]
}
