// Package kw implements AES key wrap (RFC 3394) and AES key wrap with
// padding (RFC 5649), and the ANSI X9.63 key derivation function: the
// primitives of the ECDH recipient stanza (padded wrap, X9.63 with
// SHA-256; PKCS#11's CKM_AES_KEY_WRAP_PAD and CKD_SHA256_KDF) and of CMS
// key agreement (unpadded wrap, the id-aes*-wrap algorithms of RFC 3565,
// and X9.63 with the scheme's hash, RFC 5753).
package kw

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"hash"
)

// ErrUnwrap is the one error for every failed unwrap.
var ErrUnwrap = errors.New("key unwrap failed")

var (
	aivPrefix = [4]byte{0xA6, 0x59, 0x59, 0xA6}                         // RFC 5649
	defaultIV = [8]byte{0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6} // RFC 3394
)

// wrapRounds is RFC 3394's wrapping process W, in place: out[:8] is the
// integrity check register, out[8:] the n >= 1 64-bit blocks.
func wrapRounds(b cipher.Block, out []byte) {
	n := len(out)/8 - 1
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
}

// unwrapRounds is the unwrapping process W^-1, in place.
func unwrapRounds(b cipher.Block, out []byte) {
	n := len(out)/8 - 1
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
}

// unwrapStart returns the cipher of kek and a copy of c to unwrap in
// place.
func unwrapStart(kek, c []byte) (cipher.Block, []byte, error) {
	b, err := aes.NewCipher(kek)
	if err != nil {
		return nil, nil, err
	}
	return b, bytes.Clone(c), nil
}

// Wrap wraps p (a multiple of 8 bytes, at least 16) under the AES key
// kek (RFC 3394, the default initial value).
func Wrap(kek, p []byte) ([]byte, error) {
	if len(p) < 16 || len(p)%8 != 0 {
		return nil, errors.New("kw: key wrap input must be a multiple of 8 bytes, at least 16")
	}
	b, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 8+len(p))
	copy(out, defaultIV[:])
	copy(out[8:], p)
	wrapRounds(b, out)
	return out, nil
}

// Unwrap reverses Wrap. Every failure of the wrapped key returns
// ErrUnwrap; a kek of a length AES does not take is the caller's error.
func Unwrap(kek, c []byte) ([]byte, error) {
	if len(c) < 24 || len(c)%8 != 0 {
		return nil, ErrUnwrap
	}
	b, out, err := unwrapStart(kek, c)
	if err != nil {
		return nil, err
	}
	unwrapRounds(b, out)
	if subtle.ConstantTimeCompare(out[:8], defaultIV[:]) != 1 {
		clear(out)
		return nil, ErrUnwrap
	}
	p := make([]byte, len(c)-8)
	copy(p, out[8:])
	clear(out)
	return p, nil
}

// WrapPad wraps p (1 to 2^32-1 bytes) under the AES key kek.
func WrapPad(kek, p []byte) ([]byte, error) {
	if len(p) == 0 || uint64(len(p)) > 1<<32-1 {
		return nil, errors.New("kw: bad plaintext length")
	}
	b, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	padded := (len(p) + 7) &^ 7
	out := make([]byte, 8+padded)
	copy(out, aivPrefix[:])
	binary.BigEndian.PutUint32(out[4:8], uint32(len(p)))
	copy(out[8:], p)
	if padded == 8 {
		b.Encrypt(out, out)
		return out, nil
	}
	wrapRounds(b, out)
	return out, nil
}

// UnwrapPad reverses WrapPad. Every failure returns ErrUnwrap.
func UnwrapPad(kek, c []byte) ([]byte, error) {
	if len(c) < 16 || len(c)%8 != 0 {
		return nil, ErrUnwrap
	}
	b, out, err := unwrapStart(kek, c)
	if err != nil {
		return nil, err
	}
	if len(c) == 16 {
		b.Decrypt(out, out)
	} else {
		unwrapRounds(b, out)
	}
	// Check the integrity value, the length and the zero padding without
	// branching on secret data until the end.
	ok := subtle.ConstantTimeCompare(out[:4], aivPrefix[:])
	mli := int(binary.BigEndian.Uint32(out[4:8]))
	padded := len(out) - 8
	ok &= subtle.ConstantTimeLessOrEq(padded-7, mli) & subtle.ConstantTimeLessOrEq(mli, padded)
	var nonzero byte
	for i := 8; i < len(out); i++ {
		// Bytes at index >= 8+mli must be zero.
		inPad := subtle.ConstantTimeLessOrEq(8+mli, i)
		nonzero |= out[i] & byte(-inPad)
	}
	ok &= subtle.ConstantTimeByteEq(nonzero, 0)
	if ok != 1 {
		clear(out)
		return nil, ErrUnwrap
	}
	p := make([]byte, mli)
	copy(p, out[8:8+mli])
	clear(out)
	return p, nil
}

// X963KDF returns n bytes of ANSI X9.63 KDF output: Hash(z || counter ||
// sharedInfo) for counter = 1, 2, ... as 32-bit big-endian integers,
// concatenated and truncated to n bytes (SEC 1 section 3.6.1). What is
// cut off is zeroed.
func X963KDF(newHash func() hash.Hash, z, sharedInfo []byte, n int) []byte {
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

// X963KDFSHA256 is X963KDF with SHA-256.
func X963KDFSHA256(z, sharedInfo []byte, n int) []byte {
	return X963KDF(sha256.New, z, sharedInfo, n)
}
