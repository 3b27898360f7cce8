package cms

import (
	"crypto/aes"
	"crypto/cipher"
	"testing"
)

func BenchmarkGCMStream(b *testing.B) {
	for _, ch := range []int{16 << 10, 64 << 10, 256 << 10} {
		b.Run(itoa(ch), func(b *testing.B) {
			key, nonce := make([]byte, 32), make([]byte, 12)
			g, _ := newGCMStream(key, nonce)
			buf := make([]byte, ch)
			b.SetBytes(int64(ch))
			for i := 0; i < b.N; i++ {
				g.encrypt(buf, buf)
			}
		})
	}
	b.Run("hashonly", func(b *testing.B) {
		key, nonce := make([]byte, 32), make([]byte, 12)
		g, _ := newGCMStream(key, nonce)
		buf := make([]byte, 64<<10)
		b.SetBytes(int64(len(buf)))
		for i := 0; i < b.N; i++ {
			g.hash(buf)
		}
	})
	b.Run("stdlib-seal-64k", func(b *testing.B) {
		block, _ := aes.NewCipher(make([]byte, 32))
		a, _ := cipher.NewGCM(block)
		buf := make([]byte, 64<<10, 64<<10+16)
		nonce := make([]byte, 12)
		b.SetBytes(int64(len(buf)))
		for i := 0; i < b.N; i++ {
			a.Seal(buf[:0], nonce, buf, nil)
		}
	})
}

func itoa(n int) string {
	if n >= 1<<10 {
		return itoa(n>>10) + "KiB"
	}
	s := ""
	for ; n > 0; n /= 10 {
		s = string(rune('0'+n%10)) + s
	}
	return s
}
