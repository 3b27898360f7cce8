package stream

import (
	"crypto/cipher"
	"errors"
	"hash"
	"io"
)

// Reader decrypts a payload and holds back the trailer after it. It
// returns plaintext only from chunks that authenticated, and its first
// error is returned by every later call. io.EOF means the last chunk
// authenticated and exactly a trailer followed it.
type Reader struct {
	// Hash, when set, is fed every payload byte (ciphertext) in order:
	// the version 1 signature's digest.
	Hash hash.Hash
	// Digests, when set, gets every chunk's digest, in order: the
	// version 2 signature's.
	Digests *Digests
	// Tee, when set, is written every payload byte (ciphertext) in
	// order, before it is authenticated.
	Tee io.Writer

	a      cipher.AEAD
	key    []byte // for the pipeline's workers; cleared at the end
	f      framer
	j      *job   // the serial path's chunk, from the pool
	unread []byte // plaintext not yet returned by Read
	hash   *chunkHasher
	err    error
}

// NewReader returns a Reader opening with key, which must be 32 bytes.
// src must end exactly where the envelope ends: the payload and then
// trailerLen (at most MaxTrailer) bytes, which Trailer returns.
func NewReader(key []byte, src io.Reader, trailerLen int) (*Reader, error) {
	if trailerLen < 0 || trailerLen > MaxTrailer {
		return nil, errors.New("stream: trailer too long")
	}
	a, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	r := &Reader{a: a, key: append([]byte(nil), key...)}
	r.f = framer{src: src, tlen: trailerLen, carry: make([]byte, 0, trailerLen+1)}
	return r, nil
}

// Trailer returns the bytes after the payload, once Read has returned
// io.EOF or WriteTo nil.
func (r *Reader) Trailer() []byte {
	if r.err != io.EOF {
		return nil
	}
	return r.f.trailer
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
	if len(r.unread) == 0 && r.f.done {
		r.end(io.EOF)
	}
	return n, nil
}

// end records the Reader's final state and lets go of its buffers.
func (r *Reader) end(err error) {
	r.err = err
	r.unread = nil
	clear(r.key)
	if r.j != nil {
		putJob(r.j)
		r.j = nil
	}
}

// next frames, checks and opens one chunk into r.unread, on the serial
// path.
func (r *Reader) next() error {
	if r.f.done {
		r.end(io.EOF)
		return io.EOF
	}
	if r.j == nil {
		r.j = getJob()
	}
	j := r.j
	j.reset()
	if err := r.f.frame(j, 1); err != nil {
		r.end(err)
		return err
	}
	if err := r.observe(j); err != nil {
		r.end(err)
		return err
	}
	r.open(r.a, r.hash, j)
	r.addDigests(j)
	if err := j.err; err != nil {
		r.end(err) // recycles j
		return err
	}
	r.unread = j.out
	return nil
}

// observe gives a framed job's ciphertext, in order, to Hash and Tee.
func (r *Reader) observe(j *job) error {
	if j.k == 0 {
		return nil
	}
	ct := j.buf[:(j.k-1)*EncChunkSize+j.lens[j.k-1]] // the chunks are contiguous
	if r.Hash != nil {
		r.Hash.Write(ct)
	}
	if r.Tee != nil {
		if _, err := r.Tee.Write(ct); err != nil {
			return err
		}
	}
	return nil
}

// open opens the chunks of j in place, digesting each first when the
// Reader has Digests, and gathers their plaintext at the start of j.buf
// as j.out. At the first chunk that fails, it stops: j.out is the
// plaintext of the chunks before it, and j.err is ErrAuth. Every chunk
// goes through here, on the serial and the pipelined paths alike; a and
// h are the calling goroutine's own.
func (r *Reader) open(a cipher.AEAD, h *chunkHasher, j *job) {
	out := 0
	for i := range j.k {
		ct := j.chunk(i)
		if r.Digests != nil {
			if h == nil {
				h = newChunkHasher()
				r.hash = h
			}
			h.sum(&j.digests[i], &j.nonces[i], ct)
		}
		pt, err := a.Open(ct[:0], j.nonces[i][:], ct, nil)
		if err != nil {
			j.err, j.k = ErrAuth, i
			break
		}

		// Close the gaps the tags leave: chunk i's plaintext moves down
		// by 16*i bytes, while it is still in the cache.
		out += copy(j.buf[out:], pt)
	}
	j.out = j.buf[:out]
}

// addDigests adds the digests of j's chunks that authenticated, in
// order.
func (r *Reader) addDigests(j *job) {
	if r.Digests != nil {
		for i := range j.k {
			r.Digests.add(&j.digests[i])
		}
	}
}

// WriteTo decrypts the rest of the payload to dst. It returns nil when the
// last chunk authenticated (where Read would return io.EOF), and the
// Reader's first error otherwise; chunks before a failing one have been
// written, as Read would have returned them.
func (r *Reader) WriteTo(dst io.Writer) (int64, error) {
	total, err := r.writeUnread(dst) // what a previous Read left
	if err != nil {
		return total, err
	}
	if r.err == nil && r.f.next.isZero() {
		// The first chunk on the serial path: a payload of one chunk
		// (most small messages) needs no pipeline of its own.
		if r.err = r.next(); r.err == nil {
			n, err := r.writeUnread(dst)
			total += n
			if err != nil {
				return total, err
			}
		}
	}
	if r.err == nil && r.f.done {
		r.end(io.EOF)
	}
	if r.err != nil {
		if r.err == io.EOF {
			return total, nil
		}
		return total, r.err
	}
	n, err := r.pipelined(dst)
	return total + n, err
}

// writeUnread writes what Read or the serial first chunk left in r.unread.
func (r *Reader) writeUnread(dst io.Writer) (int64, error) {
	var total int64
	for len(r.unread) > 0 {
		n, err := dst.Write(r.unread)
		total += int64(n)
		r.unread = r.unread[n:]
		if err != nil {
			r.end(err)
			return total, err
		}
	}
	return total, nil
}

// pipelined decrypts the chunks left to dst: frame (and give Hash and
// Tee the ciphertext) in order, open and digest in parallel, write in
// order.
func (r *Reader) pipelined(dst io.Writer) (int64, error) {
	if r.j != nil { // the serial path's buffer is not needed any more
		putJob(r.j)
		r.j = nil
	}
	var total int64
	err := run(stages{
		key: r.key,
		read: func(j *job) bool {
			if j.ferr = r.f.frame(j, chunksPerJob); j.ferr == nil {
				j.err = r.observe(j)
			}
			return !r.f.done && j.ferr == nil && j.err == nil
		},
		process: func(w *worker, j *job) { r.open(w.a, w.h, j) },
		write: func(j *job) error {
			n, err := dst.Write(j.out)
			total += int64(n)
			if err != nil {
				return err
			}
			r.addDigests(j)
			switch {
			case j.err != nil:
				return j.err
			case j.ferr != nil:
				return j.ferr
			case j.final():
				return io.EOF
			}
			return nil
		},
	})
	if err == nil {
		err = errors.New("stream: payload ended without a last chunk")
	}
	r.end(err)
	if err == io.EOF {
		return total, nil
	}
	return total, err
}

// framer cuts what its source yields into the payload's chunks and the
// trailer (FORMAT.md section 5): while more than EncChunkSize payload
// bytes remain, the next EncChunkSize are a non-final chunk; what remains
// then is the final chunk, and the last tlen bytes are the trailer.
// Both paths frame through here.
type framer struct {
	src     io.Reader
	tlen    int
	carry   []byte // read past the chunks handed out so far: at most tlen+1 bytes
	next    nonce  // of the next chunk
	done    bool   // the final chunk was handed out
	trailer []byte
}

// frame reads up to k chunks into j. It reads until it holds k chunks and
// tlen+1 bytes after them (so none of the k is the last), or to the end
// of the source.
func (f *framer) frame(j *job, k int) error {
	buf := j.buf[:k*EncChunkSize+f.tlen+1]
	have := copy(buf, f.carry)
	n, err := io.ReadFull(f.src, buf[have:])
	have += n
	switch err {
	case nil:
		for i := range k {
			if err := f.add(j, i, EncChunkSize); err != nil {
				return err
			}
		}
		f.carry = append(f.carry[:0], buf[k*EncChunkSize:]...)
		return nil
	case io.EOF, io.ErrUnexpectedEOF:
		return f.frameEnd(j, buf[:have])
	}
	return err
}

// frameEnd frames the rest of the envelope, all of it in rest.
func (f *framer) frameEnd(j *job, rest []byte) error {
	if len(rest) < f.tlen {
		return ErrTrailerTruncated
	}
	payload := len(rest) - f.tlen
	f.trailer = append([]byte(nil), rest[payload:]...)
	i := 0
	for ; payload-i*EncChunkSize > EncChunkSize; i++ {
		if err := f.add(j, i, EncChunkSize); err != nil {
			return err
		}
	}
	last := payload - i*EncChunkSize
	switch {
	case last < Overhead:
		return ErrTruncated
	case last == Overhead && !f.next.isZero():
		return ErrAuth // only an empty message ends with an empty chunk
	}
	f.next.setLast()
	f.done = true
	j.lens[i], j.nonces[i], j.k = last, f.next, i+1
	return nil
}

// add makes chunk i of j, n bytes long, the next chunk.
func (f *framer) add(j *job, i, n int) error {
	j.lens[i], j.nonces[i], j.k = n, f.next, i+1
	return f.next.inc()
}
