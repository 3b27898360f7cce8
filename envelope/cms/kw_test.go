package cms

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// RFC 3394 section 4.6: 256 bits of key data with a 256-bit KEK.
func TestAESWrapRFC3394(t *testing.T) {
	kek, _ := hex.DecodeString("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
	key, _ := hex.DecodeString("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F")
	want, _ := hex.DecodeString("28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21")
	got, err := aesWrap(kek, key)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("wrap = %x, %v", got, err)
	}
	back, err := aesUnwrap(kek, got)
	if err != nil || !bytes.Equal(back, key) {
		t.Fatalf("unwrap = %x, %v", back, err)
	}
	got[3] ^= 1
	if _, err := aesUnwrap(kek, got); err != errKW {
		t.Fatalf("tampered unwrap: %v", err)
	}
	for _, n := range []int{0, 8, 16, 41} {
		if _, err := aesUnwrap(kek, make([]byte, n)); err != errKW {
			t.Fatalf("unwrap of %d bytes: %v", n, err)
		}
	}
}
