package kw

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func h(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// RFC 5649, section 6.
func TestRFC5649Vectors(t *testing.T) {
	kek := h("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8")
	for _, tc := range []struct{ key, wrapped string }{
		{"c37b7e6492584340bed12207808941155068f738", "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a"},
		{"466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f"},
	} {
		w, err := WrapPad(kek, h(tc.key))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(w, h(tc.wrapped)) {
			t.Errorf("WrapPad = %x, want %s", w, tc.wrapped)
		}
		p, err := UnwrapPad(kek, h(tc.wrapped))
		if err != nil || !bytes.Equal(p, h(tc.key)) {
			t.Errorf("UnwrapPad = %x, %v", p, err)
		}
	}
}

func TestUnwrapRejectsEveryFlip(t *testing.T) {
	kek := bytes.Repeat([]byte{7}, 32)
	key := bytes.Repeat([]byte{9}, 32)
	w, err := WrapPad(kek, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(w) != 40 {
		t.Fatalf("wrapped length %d, want 40", len(w))
	}
	for i := 0; i < len(w)*8; i++ {
		c := bytes.Clone(w)
		c[i/8] ^= 1 << (i % 8)
		if _, err := UnwrapPad(kek, c); err != ErrUnwrap {
			t.Fatalf("flip of bit %d: err = %v", i, err)
		}
	}
	for _, n := range []int{0, 8, 15, 39, 41} {
		if _, err := UnwrapPad(kek, make([]byte, n)); err != ErrUnwrap {
			t.Fatalf("length %d: err = %v", n, err)
		}
	}
}

func TestRoundTripLengths(t *testing.T) {
	kek := bytes.Repeat([]byte{1}, 16)
	for n := 1; n <= 70; n++ {
		p := bytes.Repeat([]byte{byte(n)}, n)
		w, err := WrapPad(kek, p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnwrapPad(kek, w)
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("n=%d: %x %v", n, got, err)
		}
	}
}

// The first SHA-256 vector of NIST CAVP's ANSI X9.63 KDF tests (no shared
// info, 128-bit output).
func TestX963(t *testing.T) {
	z := h("96c05619d56c328ab95fe84b18264b08725b85e33fd34f08")
	got := X963KDFSHA256(z, nil, 16)
	if hex.EncodeToString(got) != "443024c3dae66b95e6f5670601558f71" {
		t.Errorf("X963 = %x", got)
	}
}

// RFC 3394 section 4.6: 256 bits of key data with a 256-bit KEK.
func TestWrapRFC3394(t *testing.T) {
	kek := h("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
	key := h("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F")
	want := h("28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21")
	got, err := Wrap(kek, key)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("wrap = %x, %v", got, err)
	}
	back, err := Unwrap(kek, got)
	if err != nil || !bytes.Equal(back, key) {
		t.Fatalf("unwrap = %x, %v", back, err)
	}
	got[3] ^= 1
	if _, err := Unwrap(kek, got); err != ErrUnwrap {
		t.Fatalf("tampered unwrap: %v", err)
	}
	for _, n := range []int{0, 8, 16, 41} {
		if _, err := Unwrap(kek, make([]byte, n)); err != ErrUnwrap {
			t.Fatalf("unwrap of %d bytes: %v", n, err)
		}
	}
	for _, n := range []int{0, 8, 17} {
		if _, err := Wrap(kek, make([]byte, n)); err == nil {
			t.Fatalf("wrap of %d bytes accepted", n)
		}
	}
}
