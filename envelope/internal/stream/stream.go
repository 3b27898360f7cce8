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
//
// # Chunk digests
//
// A signed envelope of format version 2 signs a digest of per-chunk
// SHA-256 digests (FORMAT.md section 6.2). When [Writer.Digests] or
// [Reader.Digests] is set, each chunk's digest is computed by the
// goroutine that seals or opens it, right after (or before) the AEAD,
// while the chunk is in the cache; only the 32-byte digests are put in
// order. Anonymous envelopes leave Digests nil and pay nothing for them.
//
// # Two paths
//
// Write/Close and Read are serial. [Writer.ReadFrom] and
// [Reader.WriteTo] run a pipeline: one goroutine reads and frames jobs
// of up to [chunksPerJob] chunks, a worker per CPU seals or opens them
// (and digests them), and the caller's goroutine writes them in order.
// Both paths cut the payload with the same framing and put every chunk
// through the same per-chunk steps (seal and open below), and give the
// same bytes; the tests compare them.
package stream

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"errors"
	"hash"
)

// ChunkSize is the plaintext size of every chunk but the last.
const ChunkSize = 64 << 10

// Overhead is the GCM tag appended to every chunk.
const Overhead = 16

// EncChunkSize is the size of a full chunk on the wire.
const EncChunkSize = ChunkSize + Overhead

// MaxTrailer is the longest trailer a Reader holds back (FORMAT.md
// section 2.3: an RSA-PSS signature of a 4096-bit key).
const MaxTrailer = 512

// ErrAuth is the one error for any chunk that fails to authenticate, whatever
// the reason, so that no detail leaks through error messages.
var ErrAuth = errors.New("payload chunk failed authentication")

// ErrTruncated is returned when the payload ends before its last chunk.
var ErrTruncated = errors.New("payload truncated")

// ErrTrailerTruncated is returned when the input ends before a whole
// trailer.
var ErrTrailerTruncated = errors.New("the trailer is incomplete")

var errCounter = errors.New("stream: chunk counter overflow")

// nonce is a chunk's nonce: u88(index) || last. The index is kept below
// 2^64 (FORMAT.md section 6.2), so its top three bytes stay zero.
type nonce [12]byte

func (n *nonce) setLast() { n[11] = 1 }

func (n *nonce) inc() error {
	for i := 10; i >= 3; i-- {
		n[i]++
		if n[i] != 0 {
			return nil
		}
	}
	return errCounter
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

// chunkLabel opens every chunk digest (FORMAT.md section 6.2). It is a
// variable so that hashing it allocates nothing: the pipelines allocate
// nothing per chunk (TestAllocsPerChunk).
var chunkLabel = []byte("tokenseal/v2 chunk\x00")

// chunkHasher computes chunk digests; each goroutine has its own.
type chunkHasher struct{ h hash.Hash }

func newChunkHasher() *chunkHasher { return &chunkHasher{h: sha256.New()} }

// sum sets d to chunk_digest = SHA-256(label || nonce || chunk), where
// chunk is as sent: ciphertext and tag.
func (c *chunkHasher) sum(d *[32]byte, n *nonce, chunk []byte) {
	c.h.Reset()
	c.h.Write(chunkLabel)
	c.h.Write(n[:])
	c.h.Write(chunk)
	c.h.Sum(d[:0])
}

// Digests collects the chunk digests of one payload, in order: the count
// and chunks_digest of FORMAT.md section 6.2. Set it on a Writer or a
// Reader before any chunk goes through; read it with Sum once the
// payload is complete.
type Digests struct {
	list  hash.Hash // SHA-256 of the chunk digests so far
	count uint64
}

// NewDigests returns an empty Digests.
func NewDigests() *Digests { return &Digests{list: sha256.New()} }

func (d *Digests) add(cd *[32]byte) {
	d.list.Write(cd[:])
	d.count++
}

// Sum returns the number of chunks and SHA-256 of their digests in order.
func (d *Digests) Sum() (count uint64, chunks [32]byte) {
	d.list.Sum(chunks[:0])
	return d.count, chunks
}
