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
	var d [32]byte
	ct := w.seal(w.a, w.hash, &d, w.buf, w.nonce)
	if w.Digests != nil {
		w.Digests.add(&d)
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
func (w *Writer) seal(a cipher.AEAD, h *chunkHasher, d *[32]byte, pt []byte, n nonce) []byte {
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

// sealWorker is a pipeline worker's own AEAD and hasher.
type sealWorker struct {
	a cipher.AEAD
	h *chunkHasher
}

// ReadFrom encrypts everything src yields until io.EOF. It keeps the last
// chunk buffered, as Write does, for Close (or later writes) to complete.
func (w *Writer) ReadFrom(src io.Reader) (int64, error) {
	if w.err != nil {
		return 0, w.err
	}
	p := newPipeline(workerCount(), func() *sealWorker {
		a, _ := newAEAD(w.key) // the key was checked by NewWriter
		return &sealWorker{a: a, h: newChunkHasher()}
	}, func(sw *sealWorker, j *job) {
		for i := range j.k {
			c := j.buf[i*EncChunkSize:]
			w.seal(sw.a, sw.h, &j.digests[i], c[:ChunkSize], j.nonces[i])
		}
	})
	var total int64
	var rerr error
	p.source(func(send func(*job)) { total, rerr = w.fill(src, p, send) }, nil)
	werr := p.sink(func(j *job) error {
		if w.Digests != nil {
			for i := range j.k {
				w.Digests.add(&j.digests[i])
			}
		}
		_, err := w.dst.Write(j.buf[:j.k*EncChunkSize])
		return err
	})
	p.close()
	if werr != nil {
		rerr = werr
	}
	w.err = rerr
	return total, rerr
}

// fill is ReadFrom's source. It reads src into the chunk slots of jobs
// (a slot holds a chunk's plaintext with room for its tag), and sends a
// job once it knows none of its chunks is the last: a full chunk is not
// the last only once at least one more byte has arrived. At io.EOF the
// last chunk goes back to w.buf, as Write leaves it, for Close. It stops
// at a read error or when the pipeline halts (the sink's error is then
// reported).
func (w *Writer) fill(src io.Reader, p *pipeline, send func(*job)) (int64, error) {
	j := p.get()
	if j == nil {
		return 0, nil
	}
	var total int64
	// What Write left starts the first chunk.
	have := copy(j.buf[:ChunkSize], w.buf)
	w.buf = w.buf[:0]
	var prev *job // full, its last chunk waiting for a byte after it
	drop := func(js ...*job) {
		for _, j := range js {
			if j != nil {
				p.recycle(j)
			}
		}
	}
	for s := 0; ; {
		slot := j.buf[s*EncChunkSize : s*EncChunkSize+ChunkSize]
		n, err := io.ReadFull(src, slot[have:])
		have += n
		total += int64(n)
		if have > 0 && prev != nil {
			send(prev) // a byte came after its last chunk
			prev = nil
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			for _, j := range w.keepLast(j, s, have, prev) {
				if j.k > 0 {
					send(j)
				} else {
					p.recycle(j)
				}
			}
			return total, nil
		}
		if err != nil {
			drop(j, prev)
			return total, err
		}
		// The slot is full: whether it is the last chunk is known only
		// once a byte arrives for the next.
		j.lens[s], j.nonces[s], j.k = EncChunkSize, w.nonce, s+1
		if err := w.nonce.inc(); err != nil {
			drop(j, prev)
			return total, err
		}
		s, have = s+1, 0
		if s == chunksPerJob {
			prev = j
			if j = p.get(); j == nil {
				drop(prev)
				return total, nil // halted: the sink's error is reported
			}
			s = 0
		}
	}
}

// keepLast ends fill at io.EOF, slot s of j holding have bytes. The last
// chunk is that slot when it has bytes, else the full chunk before it
// (in j, or the last of prev); it goes back to w.buf, unsealed, with
// w.nonce its nonce. It returns the jobs left, in order, each without
// the last chunk.
func (w *Writer) keepLast(j *job, s, have int, prev *job) []*job {
	switch {
	case have > 0:
		w.buf = append(w.buf, j.buf[s*EncChunkSize:s*EncChunkSize+have]...)
	case s > 0:
		s--
		w.buf = append(w.buf, j.buf[s*EncChunkSize:s*EncChunkSize+ChunkSize]...)
		w.nonce, j.k = j.nonces[s], s
	case prev != nil:
		last := chunksPerJob - 1
		w.buf = append(w.buf, prev.buf[last*EncChunkSize:last*EncChunkSize+ChunkSize]...)
		w.nonce, prev.k = prev.nonces[last], last
		return []*job{prev, j}
	}
	return []*job{j}
}
