package cms

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	mrand "math/rand/v2"
	"testing"
)

// TestGCMStreamMatchesStdlib cross-checks the streaming GCM against
// crypto/cipher's one-shot GCM on sizes around every boundary, cut into
// chunks of several sizes.
func TestGCMStreamMatchesStdlib(t *testing.T) {
	key := make([]byte, 32)
	nonce := make([]byte, 12)
	rand.Read(key)
	rand.Read(nonce)
	block, _ := aes.NewCipher(key)
	ref, _ := cipher.NewGCM(block)
	chunks := []int{16, 64, 4096, contentChunk}
	sizes := []int{0, 1, 15, 16, 17, 31, 32, 33, 4095, 4096, 4097,
		contentChunk - 1, contentChunk, contentChunk + 1, 2*contentChunk + 5, 3<<20 + 7}
	r := mrand.New(mrand.NewPCG(1, 2))
	for i := 0; i < 4; i++ {
		sizes = append(sizes, r.IntN(1<<20))
	}
	for _, size := range sizes {
		pt := make([]byte, size)
		rand.Read(pt)
		want := ref.Seal(nil, nonce, pt, nil)
		for _, ch := range chunks {
			g, err := newGCMStream(key, nonce)
			if err != nil {
				t.Fatal(err)
			}
			ct := make([]byte, size)
			for off := 0; off < size; off += ch {
				end := min(off+ch, size)
				g.encrypt(ct[off:end], pt[off:end])
			}
			if !bytes.Equal(ct, want[:size]) || !bytes.Equal(g.tag(), want[size:]) {
				t.Fatalf("size %d chunk %d: encryption differs from crypto/cipher", size, ch)
			}
			d, _ := newGCMStream(key, nonce)
			out := make([]byte, size)
			for off := 0; off < size; off += ch {
				end := min(off+ch, size)
				d.decrypt(out[off:end], ct[off:end])
			}
			if !bytes.Equal(out, pt) || !d.verify(want[size:]) {
				t.Fatalf("size %d chunk %d: decryption differs", size, ch)
			}
		}
	}
}

func TestGFPow(t *testing.T) {
	x := gf{0x0123456789abcdef, 0xfedcba9876543210}
	p := gf{hi: 1 << 63}
	for n := uint64(1); n < 40; n++ {
		p = gfMul(p, x)
		if gfPow(x, n) != p {
			t.Fatalf("x^%d differs", n)
		}
	}
}
