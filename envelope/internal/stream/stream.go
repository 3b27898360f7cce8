// Package stream implements the chunked payload encryption of tokenseal:
// the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár, 2015) over
// AES-256-GCM, in the shape of age's internal/stream.
//
// The plaintext is cut into chunks of [ChunkSize] bytes; the last chunk may
// be shorter, and is empty only when the whole plaintext is. Chunk i is
// sealed with the 12-byte nonce i (big-endian, 11 bytes) || flag, where
// flag is 0x01 for the last chunk and 0x00 otherwise, and no additional
// data. Reordered, dropped, duplicated or truncated chunks and appended
// data all fail authentication or framing.
package stream

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"hash"
	"io"
)

// ChunkSize is the plaintext size of every chunk but the last.
const ChunkSize = 64 << 10

// Overhead is the GCM tag appended to every chunk.
const Overhead = 16

// EncChunkSize is the size of a full chunk on the wire.
const EncChunkSize = ChunkSize + Overhead

// ErrAuth is the one error for any chunk that fails to authenticate, whatever
// the reason, so that no detail leaks through error messages.
var ErrAuth = errors.New("payload chunk failed authentication")

// ErrTruncated is returned when the payload ends before its last chunk.
var ErrTruncated = errors.New("payload truncated")

// ErrTrailing is returned when data follows the last chunk.
var ErrTrailing = errors.New("data after the last payload chunk")

type nonce [12]byte

func (n *nonce) setLast() { n[11] = 1 }

func (n *nonce) inc() error {
	for i := 10; i >= 0; i-- {
		n[i]++
		if n[i] != 0 {
			return nil
		}
	}
	return errors.New("stream: chunk counter overflow")
}

func (n *nonce) isZero() bool { return *n == nonce{} }

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, errors.New("stream: key must be 32 bytes")
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Writer encrypts what is written to it. Close must be called, and its error
// checked: it writes the last chunk.
type Writer struct {
	// Hash, when set, is fed every ciphertext byte in order.
	Hash hash.Hash

	a     cipher.AEAD
	dst   io.Writer
	nonce nonce
	buf   []byte // plaintext of the chunk being filled, capacity ChunkSize
	out   []byte // sealed chunk, capacity EncChunkSize
	err   error
}

// NewWriter returns a Writer sealing with key, which must be 32 bytes.
func NewWriter(key []byte, dst io.Writer) (*Writer, error) {
	a, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return &Writer{a: a, dst: dst, buf: make([]byte, 0, EncChunkSize), out: make([]byte, 0, EncChunkSize)}, nil
}

// Write buffers p and writes every chunk that is known not to be the last.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n := len(p)
	for len(p) > 0 {
		if len(w.buf) == ChunkSize {
			// More data follows, so the full buffer is not the last chunk.
			if err := w.flush(false); err != nil {
				w.err = err
				return n - len(p), err
			}
		}
		k := copy(w.buf[len(w.buf):ChunkSize], p)
		w.buf = w.buf[:len(w.buf)+k]
		p = p[k:]
	}
	return n, nil
}

// Close seals and writes the last chunk. It does not close the destination.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	err := w.flush(true)
	if err == nil {
		err = errors.New("stream: writer closed")
		w.err = err
		return nil
	}
	w.err = err
	return err
}

func (w *Writer) flush(last bool) error {
	if last {
		w.nonce.setLast()
	}
	w.out = w.a.Seal(w.out[:0], w.nonce[:], w.buf, nil)
	if w.Hash != nil {
		w.Hash.Write(w.out)
	}
	if _, err := w.dst.Write(w.out); err != nil {
		return err
	}
	w.buf = w.buf[:0]
	if last {
		return nil
	}
	return w.nonce.inc()
}

// Reader decrypts a payload. It returns plaintext only from chunks that
// authenticated, and its first error is returned by every later call. io.EOF
// means the last chunk authenticated and nothing followed it.
type Reader struct {
	// Hash, when set, is fed every ciphertext byte in order, as it is
	// authenticated.
	Hash hash.Hash

	a      cipher.AEAD
	src    io.Reader
	nonce  nonce
	in     []byte // EncChunkSize+1: one byte more than a chunk, to see the end
	have   int    // bytes of in already filled from src (lookahead included)
	plain  []byte
	unread []byte
	err    error
}

// NewReader returns a Reader opening with key, which must be 32 bytes. src
// must end exactly where the payload ends.
func NewReader(key []byte, src io.Reader) (*Reader, error) {
	a, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return &Reader{a: a, src: src, in: make([]byte, EncChunkSize+1), plain: make([]byte, 0, ChunkSize)}, nil
}

func (r *Reader) Read(p []byte) (int, error) {
	for len(r.unread) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.err = r.next()
	}
	n := copy(p, r.unread)
	r.unread = r.unread[n:]
	return n, nil
}

// next reads and opens one chunk. It fills in with up to one chunk plus one
// byte: the extra byte tells a full non-last chunk from a full last one
// without trying to open the chunk twice.
func (r *Reader) next() error {
	if r.plain == nil {
		return io.EOF
	}
	n, err := io.ReadFull(r.src, r.in[r.have:])
	r.have += n
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		// r.have < len(in): this is the last chunk.
		if r.have < Overhead {
			return ErrTruncated
		}
		if r.have == Overhead && !r.nonce.isZero() {
			// Only an empty message may end with an empty chunk.
			return ErrAuth
		}
		r.nonce.setLast()
		if r.Hash != nil {
			r.Hash.Write(r.in[:r.have])
		}
		out, err := r.a.Open(r.plain[:0], r.nonce[:], r.in[:r.have], nil)
		if err != nil {
			return ErrAuth
		}
		r.unread = out
		r.plain = nil // done: the next call returns io.EOF
		return nil
	case err != nil:
		return err
	}
	// A full chunk and at least one more byte: not the last chunk.
	if r.Hash != nil {
		r.Hash.Write(r.in[:EncChunkSize])
	}
	out, err := r.a.Open(r.plain[:0], r.nonce[:], r.in[:EncChunkSize], nil)
	if err != nil {
		return ErrAuth
	}
	if err := r.nonce.inc(); err != nil {
		return err
	}
	r.in[0] = r.in[EncChunkSize]
	r.have = 1
	r.unread = out
	return nil
}
