package stream

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

var key = bytes.Repeat([]byte{0x42}, 32)

var sizes = []int{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, 2 * ChunkSize, 3*ChunkSize + 17, 10*ChunkSize - 1, 10 * ChunkSize}

func sealSerial(t testing.TB, plain []byte) []byte {
	var buf bytes.Buffer
	w, _ := NewWriter(key, &buf)
	for p := plain; len(p) > 0; {
		n := min(len(p), 1000)
		w.Write(p[:n])
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// onlyWriter hides ReadFrom so io.Copy paths are explicit.
type onlyWriter struct{ io.Writer }

// specDigests computes count and chunks_digest of FORMAT.md section 6.2
// from a whole payload, independently of Digests: cut it as section 5
// says, hash each chunk with its nonce, hash the list.
func specDigests(payload []byte) (uint64, [32]byte) {
	var list []byte
	var i uint64
	for {
		last := len(payload) <= EncChunkSize
		c := payload
		if !last {
			c = payload[:EncChunkSize]
		}
		n := make([]byte, 12)
		binary.BigEndian.PutUint64(n[3:11], i)
		if last {
			n[11] = 1
		}
		d := sha256.Sum256(append(append([]byte("tokenseal/v2 chunk\x00"), n...), c...))
		list = append(list, d[:]...)
		i++
		if last {
			return i, sha256.Sum256(list)
		}
		payload = payload[EncChunkSize:]
	}
}

// The pipelined paths give the bytes of the serial ones, whatever the
// read sizes of the source, and the chunk digests of the spec.
func TestPipelineMatchesSerial(t *testing.T) {
	for _, n := range sizes {
		plain := make([]byte, n)
		rand.Read(plain)
		want := sealSerial(t, plain)
		wantCount, wantList := specDigests(want)
		for name, src := range map[string]func() io.Reader{
			"whole":   func() io.Reader { return bytes.NewReader(plain) },
			"onebyte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(plain)) },
			"half":    func() io.Reader { return iotest.HalfReader(bytes.NewReader(plain)) },
		} {
			if name == "onebyte" && n > 3*ChunkSize {
				continue
			}
			var buf bytes.Buffer
			w, _ := NewWriter(key, &buf)
			w.Digests = NewDigests()
			w.Write(plain[:min(n, 10)]) // serial first, then pipelined
			if _, err := w.ReadFrom(src()); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got := buf.Bytes()
			// Writing the first 10 bytes twice differs from the
			// serial reference, so compare against that plaintext.
			ref := sealSerial(t, append(bytes.Clone(plain[:min(n, 10)]), plain...))
			if !bytes.Equal(got, ref) {
				t.Fatalf("n=%d %s: pipelined seal differs from serial", n, name)
			}
			c, l := specDigests(got)
			if gc, gl := w.Digests.Sum(); gc != c || gl != l {
				t.Fatalf("n=%d %s: chunk digests differ from the spec's", n, name)
			}
		}
		// ReadFrom alone.
		var buf bytes.Buffer
		w, _ := NewWriter(key, &buf)
		w.Digests = NewDigests()
		w.ReadFrom(bytes.NewReader(plain))
		w.Close()
		if !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("n=%d: ReadFrom differs from Write", n)
		}
		if gc, gl := w.Digests.Sum(); gc != wantCount || gl != wantList {
			t.Fatalf("n=%d: ReadFrom's chunk digests differ from the spec's", n)
		}
		checkOpen(t, plain, want)
	}
}

// checkOpen opens want, the sealed plain, with WriteTo after a partial
// Read and with Read alone: the plaintext comes out, the hash and the
// tee see the ciphertext, the digests are the spec's, and the trailer
// after the payload is held back.
func checkOpen(t *testing.T, plain, want []byte) {
	t.Helper()
	n := len(plain)
	wantCount, wantList := specDigests(want)
	trailer := []byte("a trailer of 24 bytes...")
	for _, pre := range []int{0, 5, ChunkSize + 3} {
		r, _ := NewReader(key, iotest.HalfReader(bytes.NewReader(append(bytes.Clone(want), trailer...))), len(trailer))
		h := sha256.New()
		r.Hash, r.Digests = h, NewDigests()
		var tee bytes.Buffer
		r.Tee = &tee
		head := make([]byte, min(pre, n))
		if _, err := io.ReadFull(r, head); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		out.Write(head)
		if _, err := r.WriteTo(&out); err != nil {
			t.Fatalf("n=%d pre=%d: %v", n, pre, err)
		}
		if !bytes.Equal(out.Bytes(), plain) {
			t.Fatalf("n=%d pre=%d: WriteTo plaintext differs", n, pre)
		}
		if sum := sha256.Sum256(want); !bytes.Equal(h.Sum(nil), sum[:]) || !bytes.Equal(tee.Bytes(), want) {
			t.Fatalf("n=%d pre=%d: hash or tee differs", n, pre)
		}
		if gc, gl := r.Digests.Sum(); gc != wantCount || gl != wantList {
			t.Fatalf("n=%d pre=%d: chunk digests differ from the spec's", n, pre)
		}
		if !bytes.Equal(r.Trailer(), trailer) {
			t.Fatalf("n=%d pre=%d: trailer %q", n, pre, r.Trailer())
		}
		if m, err := r.Read(make([]byte, 1)); m != 0 || err != io.EOF {
			t.Fatalf("Read after WriteTo: %d %v", m, err)
		}
	}
	r, _ := NewReader(key, bytes.NewReader(append(bytes.Clone(want), trailer...)), len(trailer))
	r.Digests = NewDigests()
	got, err := io.ReadAll(iotest.OneByteReader(r))
	if err != nil || !bytes.Equal(got, plain) || !bytes.Equal(r.Trailer(), trailer) {
		t.Fatalf("n=%d: Read: %v", n, err)
	}
	if gc, gl := r.Digests.Sum(); gc != wantCount || gl != wantList {
		t.Fatalf("n=%d: Read's chunk digests differ from the spec's", n)
	}
}

// A trailer that is cut short, and a payload that ends where the trailer
// should start, are refused.
func TestTrailer(t *testing.T) {
	env := sealSerial(t, make([]byte, 2*ChunkSize+5))
	for _, writeTo := range []bool{false, true} {
		for cut, want := range map[int]error{len(env) + 63: ErrAuth, 10: ErrTrailerTruncated, 70: ErrTruncated} {
			b := append(bytes.Clone(env), make([]byte, 64)...)[:cut]
			r, _ := NewReader(key, bytes.NewReader(b), 64)
			var err error
			if writeTo {
				_, err = r.WriteTo(io.Discard)
			} else {
				_, err = io.ReadAll(r)
			}
			if !errors.Is(err, want) || r.Trailer() != nil {
				t.Errorf("cut at %d, WriteTo %v: err = %v, want %v", cut, writeTo, err, want)
			}
		}
	}
	if _, err := NewReader(key, bytes.NewReader(nil), MaxTrailer+1); err == nil {
		t.Error("a trailer longer than MaxTrailer was accepted")
	}
}

// A chunk that fails stops the pipeline there: earlier chunks are written,
// nothing after, and the error is ErrAuth; truncation likewise.
func TestPipelineFailures(t *testing.T) {
	plain := make([]byte, 8*ChunkSize+100)
	rand.Read(plain)
	env := sealSerial(t, plain)
	for _, bad := range []int{0, 3, 7, 8} {
		b := bytes.Clone(env)
		b[bad*EncChunkSize+5] ^= 1
		r, _ := NewReader(key, bytes.NewReader(b), 0)
		var out bytes.Buffer
		_, err := r.WriteTo(&out)
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("chunk %d: err = %v", bad, err)
		}
		if out.Len() != bad*ChunkSize || !bytes.Equal(out.Bytes(), plain[:out.Len()]) {
			t.Fatalf("chunk %d: wrote %d bytes", bad, out.Len())
		}
		if _, err2 := r.Read(make([]byte, 1)); err2 != err {
			t.Fatalf("error not sticky: %v", err2)
		}
	}
	for _, cut := range []int{0, 10, EncChunkSize, EncChunkSize + 1, 3 * EncChunkSize, len(env) - 1} {
		r, _ := NewReader(key, bytes.NewReader(env[:cut]), 0)
		_, err := r.WriteTo(io.Discard)
		if err == nil {
			t.Fatalf("truncation at %d accepted", cut)
		}
	}
	// Appended data.
	r, _ := NewReader(key, bytes.NewReader(append(bytes.Clone(env), 0)), 0)
	if _, err := r.WriteTo(io.Discard); !errors.Is(err, ErrAuth) {
		t.Fatalf("appended byte: %v", err)
	}
}

type failWriter struct{ n, limit int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n+len(p) > f.limit {
		return 0, errors.New("disk full")
	}
	f.n += len(p)
	return len(p), nil
}

type failReader struct {
	r     io.Reader
	limit int
}

func (f *failReader) Read(p []byte) (int, error) {
	if f.limit <= 0 {
		return 0, errors.New("read error")
	}
	if len(p) > f.limit {
		p = p[:f.limit]
	}
	n, err := f.r.Read(p)
	f.limit -= n
	return n, err
}

func TestPipelineIOErrors(t *testing.T) {
	plain := make([]byte, 20*ChunkSize)
	env := sealSerial(t, plain)
	for _, limit := range []int{0, 1000, 5 * EncChunkSize} {
		w, _ := NewWriter(key, &failWriter{limit: limit})
		if _, err := w.ReadFrom(bytes.NewReader(plain)); err == nil || err.Error() != "disk full" {
			t.Fatalf("seal write limit %d: %v", limit, err)
		}
		if err := w.Close(); err == nil {
			t.Fatal("Close after failure succeeded")
		}
		r, _ := NewReader(key, bytes.NewReader(env), 0)
		if _, err := r.WriteTo(&failWriter{limit: limit}); err == nil || err.Error() != "disk full" {
			t.Fatalf("open write limit %d: %v", limit, err)
		}
	}
	for _, limit := range []int{0, 1000, 5 * ChunkSize} {
		w, _ := NewWriter(key, io.Discard)
		if _, err := w.ReadFrom(&failReader{bytes.NewReader(plain), limit}); err == nil {
			t.Fatalf("seal read limit %d: no error", limit)
		}
		r, _ := NewReader(key, &failReader{bytes.NewReader(env), limit}, 0)
		if _, err := r.WriteTo(io.Discard); err == nil {
			t.Fatalf("open read limit %d: no error", limit)
		}
	}
}

// BenchmarkPipeline measures both paths of seal and open, anonymous
// and with the chunk digests of a signed envelope (FORMAT.md 6.2), to
// and from memory: the cost of the AEAD and of the digests spread over
// the workers, without the file system's.
func BenchmarkPipeline(b *testing.B) {
	plain := make([]byte, 64<<20)
	env := sealSerial(b, plain)
	for _, mode := range []string{"seal-serial", "seal-pipelined", "open-serial", "open-pipelined"} {
		for _, signed := range []bool{false, true} {
			name := mode + "/anonymous"
			if signed {
				name = mode + "/digests"
			}
			b.Run(name, func(b *testing.B) {
				b.SetBytes(int64(len(plain)))
				for b.Loop() {
					var d *Digests
					if signed {
						d = NewDigests()
					}
					switch mode {
					case "seal-serial":
						w, _ := NewWriter(key, io.Discard)
						w.Digests = d
						w.Write(plain)
						w.Close()
					case "seal-pipelined":
						w, _ := NewWriter(key, io.Discard)
						w.Digests = d
						w.ReadFrom(bytes.NewReader(plain))
						w.Close()
					case "open-serial":
						r, _ := NewReader(key, bytes.NewReader(env), 0)
						r.Digests = d
						io.Copy(onlyWriter{io.Discard}, struct{ io.Reader }{r})
					case "open-pipelined":
						r, _ := NewReader(key, bytes.NewReader(env), 0)
						r.Digests = d
						r.WriteTo(io.Discard)
					}
				}
			})
		}
	}
}
