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

// last reports whether the nonce carries the last-chunk flag.
func (n *nonce) last() bool { return n[11] == 1 }

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
	w.out = w.seal(w.out[:0], w.buf, w.nonce)
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

// seal seals one chunk of plaintext pt under nonce n, appending it to
// dst. Every chunk goes through here, on the serial and the pipelined
// paths alike (there, in the AEAD stage): a per-chunk step, such as a
// digest of the chunk's ciphertext bound to its nonce (index and last
// flag), belongs here and in open.
func (w *Writer) seal(dst, pt []byte, n nonce) []byte {
	return w.a.Seal(dst, n[:], pt, nil)
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
	nonce  nonce  // of the next chunk
	in     []byte // EncChunkSize+1: one byte more than a chunk, to see the end
	have   int    // bytes of in already filled from src (lookahead included)
	shift  bool   // in[:EncChunkSize] was handed out; in[EncChunkSize] starts the next chunk
	plain  []byte // nil once the last chunk was read
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

// next reads, hashes and opens one chunk into r.unread.
func (r *Reader) next() error {
	if r.plain == nil {
		return io.EOF
	}
	ct, n, err := r.readChunk()
	if err != nil {
		return err
	}
	if r.Hash != nil {
		r.Hash.Write(ct)
	}
	if r.unread, err = r.open(r.plain[:0], ct, n); err != nil {
		return err
	}
	if n.last() {
		r.plain = nil // done: the next call returns io.EOF
	}
	return nil
}

// readChunk reads the next chunk's ciphertext and gives it its nonce:
// the framing rules of the payload, for the serial and the pipelined
// paths alike. It fills r.in with up to one chunk plus one byte: the
// extra byte tells a full chunk that is not the last from a full last
// one without trying to open the chunk twice. ct is valid until the
// next call. It must not be called after the last chunk.
func (r *Reader) readChunk() (ct []byte, n nonce, err error) {
	if r.shift {
		r.in[0] = r.in[EncChunkSize]
		r.have, r.shift = 1, false
	}
	m, err := io.ReadFull(r.src, r.in[r.have:])
	r.have += m
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		// r.have < len(in): this is the last chunk.
		if r.have < Overhead {
			return nil, n, ErrTruncated
		}
		if r.have == Overhead && !r.nonce.isZero() {
			// Only an empty message may end with an empty chunk.
			return nil, n, ErrAuth
		}
		r.nonce.setLast()
		return r.in[:r.have], r.nonce, nil
	case err != nil:
		return nil, n, err
	}
	// A full chunk and at least one more byte: not the last chunk.
	n = r.nonce
	if err := r.nonce.inc(); err != nil {
		return nil, n, err
	}
	r.shift = true
	return r.in[:EncChunkSize], n, nil
}

// open opens one chunk ct under nonce n, appending the plaintext to dst.
// Every chunk goes through here, on the serial and the pipelined paths
// alike.
func (r *Reader) open(dst, ct []byte, n nonce) ([]byte, error) {
	out, err := r.a.Open(dst, n[:], ct, nil)
	if err != nil {
		return nil, ErrAuth
	}
	return out, nil
}
