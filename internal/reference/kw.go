package reference

import (
	"bytes"
	"crypto/aes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
)

// RFC 5649 AES key wrap with padding (and the RFC 3394 core it uses).

var kwpAIV = []byte{0xA6, 0x59, 0x59, 0xA6}

// AESWrap is the RFC 3394 wrapping process W with initial value iv over
// n >= 2 semiblocks.
func AESWrap(kek []byte, iv [8]byte, p []byte) ([]byte, error) {
	blk, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	if len(p)%8 != 0 || len(p) < 16 {
		return nil, errors.New("kw: bad plaintext length")
	}
	n := len(p) / 8
	a := iv
	r := bytes.Clone(p)
	var buf [16]byte
	for j := 0; j < 6; j++ {
		for i := 1; i <= n; i++ {
			copy(buf[:8], a[:])
			copy(buf[8:], r[(i-1)*8:i*8])
			blk.Encrypt(buf[:], buf[:])
			copy(a[:], buf[:8])
			t := uint64(n*j + i)
			for k := 0; k < 8; k++ {
				a[k] ^= byte(t >> (56 - 8*k))
			}
			copy(r[(i-1)*8:], buf[8:])
		}
	}
	return append(a[:], r...), nil
}

// KWPWrap wraps key under kek (RFC 5649).
func KWPWrap(kek, key []byte) ([]byte, error) {
	if len(key) == 0 {
		return nil, errors.New("kwp: empty key")
	}
	var aiv [8]byte
	copy(aiv[:4], kwpAIV)
	binary.BigEndian.PutUint32(aiv[4:], uint32(len(key)))
	p := make([]byte, (len(key)+7)/8*8)
	copy(p, key)
	if len(p) == 8 {
		blk, err := aes.NewCipher(kek)
		if err != nil {
			return nil, err
		}
		out := append(aiv[:], p...)
		blk.Encrypt(out, out)
		return out, nil
	}
	return AESWrap(kek, aiv, p)
}

// KWPUnwrap unwraps c under kek (RFC 5649), checking the integrity value,
// the length and the padding.
func KWPUnwrap(kek, c []byte) ([]byte, error) {
	blk, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	if len(c)%8 != 0 || len(c) < 16 {
		return nil, errors.New("kwp: bad ciphertext length")
	}
	n := len(c)/8 - 1
	var a [8]byte
	r := make([]byte, n*8)
	var buf [16]byte
	if n == 1 {
		blk.Decrypt(buf[:], c)
		copy(a[:], buf[:8])
		copy(r, buf[8:])
	} else {
		copy(a[:], c[:8])
		copy(r, c[8:])
		for j := 5; j >= 0; j-- {
			for i := n; i >= 1; i-- {
				t := uint64(n*j + i)
				for k := 0; k < 8; k++ {
					a[k] ^= byte(t >> (56 - 8*k))
				}
				copy(buf[:8], a[:])
				copy(buf[8:], r[(i-1)*8:i*8])
				blk.Decrypt(buf[:], buf[:])
				copy(a[:], buf[:8])
				copy(r[(i-1)*8:], buf[8:])
			}
		}
	}
	ok := subtle.ConstantTimeCompare(a[:4], kwpAIV)
	mli := int(binary.BigEndian.Uint32(a[4:]))
	if ok != 1 || mli <= 8*(n-1) || mli > 8*n {
		return nil, errors.New("kwp: integrity check failed")
	}
	for _, b := range r[mli:] {
		if b != 0 {
			return nil, errors.New("kwp: non-zero padding")
		}
	}
	return r[:mli], nil
}
