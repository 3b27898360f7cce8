package stream

import (
	"crypto/cipher"
	"errors"
	"io"
)

// Writer encrypts what is written to it. Close must be called, and its error
// checked: it writes the last chunk.
type Writer struct {
	// Digests, when set, gets every chunk's digest, in order.
	Digests *Digests

	a     cipher.AEAD
	key   []byte // for the pipeline's workers; cleared by Close
	dst   io.Writer
	nonce nonce  // of the next chunk
	buf   []byte // plaintext of the chunk being filled; capacity EncChunkSize, sealed in place
	hash  *chunkHasher
	d     [32]byte // the serial path's chunk digest
	err   error
}

// NewWriter returns a Writer sealing with key, which must be 32 bytes.
func NewWriter(key []byte, dst io.Writer) (*Writer, error) {
	a, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return &Writer{a: a, key: append([]byte(nil), key...), dst: dst, buf: make([]byte, 0, EncChunkSize)}, nil
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
	clear(w.key)
	if err == nil {
		w.err = errors.New("stream: writer closed")
		return nil
	}
	w.err = err
	return err
}

// flush seals w.buf in place and writes it.
func (w *Writer) flush(last bool) error {
	if last {
		w.nonce.setLast()
	}
	ct := w.seal(w.a, w.hash, &w.d, w.buf, &w.nonce)
	if w.Digests != nil {
		w.Digests.add(&w.d)
	}
	if _, err := w.dst.Write(ct); err != nil {
		return err
	}
	w.buf = w.buf[:0]
	if last {
		return nil
	}
	return w.nonce.inc()
}

// seal seals the plaintext pt in place (pt has room for the tag) under
// nonce n and, when the Writer has Digests, sets d to the chunk's digest.
// Every chunk goes through here, on the serial and the pipelined paths
// alike; a and h are the calling goroutine's own.
func (w *Writer) seal(a cipher.AEAD, h *chunkHasher, d *[32]byte, pt []byte, n *nonce) []byte {
	ct := a.Seal(pt[:0], n[:], pt, nil)
	if w.Digests != nil {
		if h == nil {
			h = newChunkHasher()
			w.hash = h
		}
		h.sum(d, n, ct)
	}
	return ct
}

// ReadFrom encrypts everything src yields until io.EOF. It keeps the last
// chunk buffered, as Write does, for Close (or later writes) to complete.
func (w *Writer) ReadFrom(src io.Reader) (int64, error) {
	if w.err != nil {
		return 0, w.err
	}
	var total int64
	var rerr error
	werr := run(stages{
		key: w.key,
		read: func(j *job) bool {
			n, done, err := w.readJob(src, j)
			total += n
			if err != nil {
				rerr = err
			}
			return !done && err == nil
		},
		process: func(wk *worker, j *job) {
			for i := range j.k {
				c := j.buf[i*EncChunkSize:]
				w.seal(wk.a, wk.h, &j.digests[i], c[:ChunkSize], &j.nonces[i])
			}
		},
		write: func(j *job) error {
			if w.Digests != nil {
				for i := range j.k {
					w.Digests.add(&j.digests[i])
				}
			}
			_, err := w.dst.Write(j.buf[:j.k*EncChunkSize])
			return err
		},
	})
	if werr != nil {
		rerr = werr
	}
	w.err = rerr
	return total, rerr
}

// readJob is ReadFrom's read stage: it reads the next full chunks into
// the slots of j (a slot holds a chunk's plaintext with room for its
// tag), each known not to be the last: a full chunk is not the last once
// at least one more byte has arrived, which readJob reads ahead into
// w.buf. At io.EOF (done) the last chunk is back in w.buf, unsealed, as
// Write leaves it, for Close; the chunks before it are in j.
func (w *Writer) readJob(src io.Reader, j *job) (total int64, done bool, err error) {
	for s := 0; s < chunksPerJob; s++ {
		slot := j.buf[s*EncChunkSize : s*EncChunkSize+ChunkSize]
		have := copy(slot, w.buf) // what Write left, or the byte read ahead
		w.buf = w.buf[:0]
		n, err := io.ReadFull(src, slot[have:])
		total += int64(n)
		have += n
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			if have == 0 && s > 0 {
				// The chunk before was full and is the last.
				s--
				have = ChunkSize
				w.nonce = j.nonces[s]
				j.k = s
			}
			w.buf = append(w.buf, j.buf[s*EncChunkSize:s*EncChunkSize+have]...)
			return total, true, nil
		}
		if err != nil {
			return total, true, err
		}
		j.lens[s], j.nonces[s], j.k = EncChunkSize, w.nonce, s+1
		if err := w.nonce.inc(); err != nil {
			return total, true, err
		}
	}
	// Whether the job's last chunk is the last of all: one byte ahead.
	n, err := io.ReadFull(src, w.buf[:1])
	total += int64(n)
	switch err {
	case nil:
		w.buf = w.buf[:1]
		return total, false, nil
	case io.EOF:
		last := chunksPerJob - 1
		w.buf = append(w.buf[:0], j.buf[last*EncChunkSize:last*EncChunkSize+ChunkSize]...)
		w.nonce, j.k = j.nonces[last], last
		return total, true, nil
	}
	return total, true, err
}
