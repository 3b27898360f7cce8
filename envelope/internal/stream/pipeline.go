package stream

import (
	"errors"
	"io"
	"sync"
)

// The pipelined paths: Writer.ReadFrom and Reader.WriteTo overlap reading,
// the AEAD and writing in three stages joined by bounded channels, with
// a fixed set of chunk buffers reused in place (no allocation per chunk).
// They produce exactly what the serial Write and Read paths produce; the
// tests compare them byte for byte. All goroutines are joined before
// these methods return.

// inFlight is the number of chunk buffers a pipeline owns.
const inFlight = 6

// bufPool recycles chunk buffers (EncChunkSize bytes) across pipelines,
// so that opening many small envelopes in one process does not allocate
// and clear them each time.
var bufPool = sync.Pool{New: func() any { b := make([]byte, EncChunkSize); return &b }}

func getBuf() []byte { return (*bufPool.Get().(*[]byte))[:EncChunkSize] }

// drainBufs returns the buffers left in free to the pool.
func drainBufs(free chan []byte) {
	for {
		select {
		case b := <-free:
			putBuf(b)
		default:
			return
		}
	}
}

func putBuf(b []byte) {
	if cap(b) < EncChunkSize {
		return
	}
	b = b[:EncChunkSize]
	bufPool.Put(&b)
}

type job struct {
	buf  []byte // plaintext in, ciphertext out (or the reverse); cap EncChunkSize
	n    nonce
	last bool
	err  error
}

// ReadFrom encrypts everything src yields until io.EOF. It keeps the last
// chunk buffered, as Write does, for Close (or later writes) to complete.
func (w *Writer) ReadFrom(src io.Reader) (int64, error) {
	if w.err != nil {
		return 0, w.err
	}
	free := make(chan []byte, inFlight)
	for i := 0; i < inFlight; i++ {
		free <- getBuf()[:0]
	}
	defer drainBufs(free)
	toSeal := make(chan *job, inFlight)
	toWrite := make(chan *job, inFlight)
	stop := make(chan struct{})
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }) }
	var wg sync.WaitGroup
	wg.Add(2)

	// Stage B: seal in place.
	go func() {
		defer wg.Done()
		defer close(toWrite)
		for j := range toSeal {
			j.buf = w.a.Seal(j.buf[:0], j.n[:], j.buf, nil)
			toWrite <- j
		}
	}()
	// Stage C: write, in order; then stage D hashes what was written.
	// SHA-256 is the slowest step of a signed envelope, so it gets a
	// stage of its own, overlapping the read, the AEAD and the write.
	var werr error
	toHash := make(chan *job, inFlight)
	go func() {
		defer wg.Done()
		defer close(toHash)
		for j := range toWrite {
			if werr == nil {
				if _, err := w.dst.Write(j.buf); err != nil {
					werr = err
					halt()
				}
			}
			toHash <- j
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for j := range toHash {
			if w.Hash != nil {
				w.Hash.Write(j.buf)
			}
			free <- j.buf[:0]
		}
	}()

	// Stage A (this goroutine): fill chunks. A full chunk is sent on only
	// once more data has arrived, so the last chunk stays in w.buf.
	var total int64
	var rerr error
	for {
		if len(w.buf) == ChunkSize {
			var next []byte
			select {
			case next = <-free:
			case <-stop:
			}
			if next == nil {
				break
			}
			// Read at least one byte into next before sending w.buf.
			n, err := io.ReadAtLeast(src, next[:ChunkSize], 1)
			total += int64(n)
			if n == 0 {
				free <- next
				if err != io.EOF && err != io.ErrUnexpectedEOF {
					rerr = err
				}
				break
			}
			toSeal <- &job{buf: w.buf, n: w.nonce}
			if err := w.nonce.inc(); err != nil {
				rerr = err
				break
			}
			w.buf = next[:n]
			if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
				rerr = err
				break
			}
			continue
		}
		n, err := io.ReadFull(src, w.buf[len(w.buf):ChunkSize])
		w.buf = w.buf[:len(w.buf)+n]
		total += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			rerr = err
			break
		}
	}
	close(toSeal)
	wg.Wait()
	// w.buf must keep a full-size backing array for later writes.
	if cap(w.buf) < ChunkSize {
		b := make([]byte, len(w.buf), EncChunkSize)
		copy(b, w.buf)
		w.buf = b
	}
	switch {
	case werr != nil:
		w.err = werr
		return total, werr
	case rerr != nil:
		w.err = rerr
		return total, rerr
	}
	return total, nil
}

// WriteTo decrypts the rest of the payload to dst. It returns nil when the
// last chunk authenticated (where Read would return io.EOF), and the
// Reader's first error otherwise; chunks before a failing one have been
// written, as Read would have returned them.
func (r *Reader) WriteTo(dst io.Writer) (int64, error) {
	var total int64
	// Drain what a previous Read left.
	for len(r.unread) > 0 {
		n, err := dst.Write(r.unread)
		total += int64(n)
		r.unread = r.unread[n:]
		if err != nil {
			return total, err
		}
	}
	if r.err != nil {
		if r.err == io.EOF {
			return total, nil
		}
		return total, r.err
	}
	if r.plain == nil { // the last chunk was already read
		r.err = io.EOF
		return total, nil
	}
	// The first chunk on the serial path: a payload of one chunk (most
	// small messages) needs no pipeline and no buffers of its own.
	if r.nonce.isZero() {
		r.err = r.next()
		if r.err != nil && r.err != io.EOF {
			return total, r.err
		}
		n, err := dst.Write(r.unread)
		total += int64(n)
		r.unread = nil
		if err != nil {
			return total, err
		}
		if r.plain == nil {
			r.err = io.EOF
			return total, nil
		}
	}

	free := make(chan []byte, inFlight)
	for i := 0; i < inFlight; i++ {
		free <- getBuf()
	}
	defer drainBufs(free)
	toOpen := make(chan *job, inFlight)
	toWrite := make(chan *job, inFlight)
	stop := make(chan struct{})
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }) }
	var wg sync.WaitGroup
	wg.Add(2)

	// Stage A: read chunks, one byte of lookahead to tell the last one.
	toHash := make(chan *job, inFlight)
	go func() {
		defer wg.Done()
		defer close(toHash)
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-stop:
				return
			}
			j, done := r.readRaw(buf)
			toHash <- j
			if done {
				return
			}
		}
	}()
	// Stage H: hash the ciphertext before it is decrypted in place. SHA-256
	// is the slowest step of a signed envelope, so it gets a stage of its
	// own. A chunk that fails later has been hashed too; by then the
	// envelope is refused anyway.
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(toOpen)
		for j := range toHash {
			if j.err == nil && r.Hash != nil {
				r.Hash.Write(j.buf)
			}
			toOpen <- j
		}
	}()
	// Stage B: open in place.
	go func() {
		defer wg.Done()
		defer close(toWrite)
		failed := false
		for j := range toOpen {
			if j.err == nil && !failed {
				out, err := r.a.Open(j.buf[:0], j.n[:], j.buf, nil)
				if err != nil {
					j.err = ErrAuth
				} else {
					j.buf = out
				}
			}
			if j.err != nil {
				failed = true
			}
			toWrite <- j
		}
	}()

	// Stage C (this goroutine): write in order.
	var err error
	for j := range toWrite {
		if err == nil {
			if j.err != nil {
				err = j.err
				halt()
			} else {
				n, werr := dst.Write(j.buf)
				total += int64(n)
				if werr != nil {
					err = werr
					halt()
				} else if j.last {
					err = io.EOF
				}
			}
		}
		free <- j.buf[:cap(j.buf)]
	}
	wg.Wait()
	r.err = err
	r.plain = nil
	if err == io.EOF {
		return total, nil
	}
	if err == nil {
		err = errors.New("stream: payload ended without a last chunk")
		r.err = err
	}
	return total, err
}

// readRaw reads the next chunk's ciphertext into buf (cap EncChunkSize)
// using the Reader's one-byte lookahead, and assigns its nonce. done is
// true for the last chunk and for errors.
func (r *Reader) readRaw(buf []byte) (j *job, done bool) {
	j = &job{}
	n, err := io.ReadFull(r.src, r.in[r.have:])
	r.have += n
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		if r.have < Overhead {
			j.err = ErrTruncated
			return j, true
		}
		if r.have == Overhead && !r.nonce.isZero() {
			j.err = ErrAuth
			return j, true
		}
		r.nonce.setLast()
		j.buf = append(buf[:0], r.in[:r.have]...)
		j.n, j.last = r.nonce, true
		return j, true
	case err != nil:
		j.err = err
		return j, true
	}
	j.buf = append(buf[:0], r.in[:EncChunkSize]...)
	j.n = r.nonce
	if err := r.nonce.inc(); err != nil {
		j.err = err
		return j, true
	}
	r.in[0] = r.in[EncChunkSize]
	r.have = 1
	return j, false
}
