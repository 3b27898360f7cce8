package stream

import (
	"errors"
	"io"
	"sync"
)

// The pipelined paths: Writer.ReadFrom and Reader.WriteTo overlap reading,
// the AEAD, hashing and writing in stages joined by bounded channels,
// with a fixed set of chunk buffers reused in place (no allocation per
// chunk). They produce exactly what the serial Write and Read paths
// produce, through the same framing (readChunk) and the same per-chunk
// steps (seal, open); the tests compare them byte for byte. All
// goroutines are joined before these methods return.

// inFlight is the number of chunk buffers a pipeline owns.
const inFlight = 6

// bufPool recycles chunk buffers (EncChunkSize bytes) across pipelines,
// so that opening many small envelopes in one process does not allocate
// and clear them each time.
var bufPool = sync.Pool{New: func() any { b := make([]byte, EncChunkSize); return &b }}

func getBuf() []byte { return (*bufPool.Get().(*[]byte))[:EncChunkSize] }

func putBuf(b []byte) {
	if cap(b) < EncChunkSize {
		return
	}
	b = b[:EncChunkSize]
	bufPool.Put(&b)
}

// job is one chunk on its way through a pipeline.
type job struct {
	buf []byte // plaintext in, ciphertext out (or the reverse); cap EncChunkSize
	n   nonce  // the chunk's nonce: its index and last flag
	err error
}

// pipeline is the plumbing both paths share: the free buffers, a stop
// signal, and the stage goroutines.
type pipeline struct {
	free chan []byte
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

// newPipeline makes a pipeline whose inFlight free buffers have length
// n (0 to be filled by appending, EncChunkSize to be read into).
func newPipeline(n int) *pipeline {
	p := &pipeline{free: make(chan []byte, inFlight), stop: make(chan struct{})}
	for range inFlight {
		p.free <- getBuf()[:n]
	}
	return p
}

// get returns a free buffer, or nil once the pipeline is halted.
func (p *pipeline) get() []byte {
	select {
	case b := <-p.free:
		return b
	case <-p.stop:
		return nil
	}
}

// halt tells the source to stop; the stages drain what is in flight.
func (p *pipeline) halt() { p.once.Do(func() { close(p.stop) }) }

// source runs next in a goroutine of its own until next reports done,
// sending every job it makes on.
func (p *pipeline) source(next func() (j *job, done bool)) <-chan *job {
	out := make(chan *job, inFlight)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(out)
		for {
			j, done := next()
			if j != nil {
				out <- j
			}
			if done {
				return
			}
		}
	}()
	return out
}

// stage runs f on every job from in, in order, in a goroutine of its
// own, and passes the jobs on.
func (p *pipeline) stage(in <-chan *job, f func(*job)) <-chan *job {
	out := make(chan *job, inFlight)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(out)
		for j := range in {
			f(j)
			out <- j
		}
	}()
	return out
}

// sink is a last stage: it runs f on every job from in, in order.
func (p *pipeline) sink(in <-chan *job, f func(*job)) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for j := range in {
			f(j)
		}
	}()
}

// close waits for every stage and returns the free buffers to the pool.
func (p *pipeline) close() {
	p.wg.Wait()
	for {
		select {
		case b := <-p.free:
			putBuf(b)
		default:
			return
		}
	}
}

// ReadFrom encrypts everything src yields until io.EOF. It keeps the last
// chunk buffered, as Write does, for Close (or later writes) to complete.
func (w *Writer) ReadFrom(src io.Reader) (int64, error) {
	if w.err != nil {
		return 0, w.err
	}
	p := newPipeline(0)
	toSeal := make(chan *job, inFlight)
	sealed := p.stage(toSeal, func(j *job) { j.buf = w.seal(j.buf[:0], j.buf, j.n) })
	var werr error
	written := p.stage(sealed, func(j *job) {
		if werr == nil {
			if _, err := w.dst.Write(j.buf); err != nil {
				werr = err
				p.halt()
			}
		}
	})
	// SHA-256 is the slowest step of a signed envelope, so it gets a
	// stage of its own, overlapping the read, the AEAD and the write.
	p.sink(written, func(j *job) {
		if w.Hash != nil {
			w.Hash.Write(j.buf)
		}
		p.free <- j.buf[:0]
	})
	total, rerr := w.fill(src, p, toSeal)
	close(toSeal)
	p.close()
	// w.buf must keep a full-size backing array for later writes.
	if cap(w.buf) < ChunkSize {
		b := make([]byte, len(w.buf), EncChunkSize)
		copy(b, w.buf)
		w.buf = b
	}
	if werr != nil {
		rerr = werr
	}
	w.err = rerr
	return total, rerr
}

// fill is ReadFrom's first stage: it reads src into chunks, and sends a
// full chunk on to be sealed only once more data has arrived, so the last
// chunk stays in w.buf, as Write leaves it. It stops at io.EOF, at a read
// error, or when the pipeline halts.
func (w *Writer) fill(src io.Reader, p *pipeline, toSeal chan<- *job) (int64, error) {
	var total int64
	for {
		if len(w.buf) < ChunkSize {
			n, err := io.ReadFull(src, w.buf[len(w.buf):ChunkSize])
			w.buf = w.buf[:len(w.buf)+n]
			total += int64(n)
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return total, nil
			}
			if err != nil {
				return total, err
			}
			continue
		}
		next := p.get()
		if next == nil {
			return total, nil // halted: the write error is reported
		}
		// Read at least one byte into next before sending w.buf.
		n, err := io.ReadAtLeast(src, next[:ChunkSize], 1)
		total += int64(n)
		if n == 0 {
			p.free <- next
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				err = nil
			}
			return total, err
		}
		toSeal <- &job{buf: w.buf, n: w.nonce}
		if err := w.nonce.inc(); err != nil {
			return total, err
		}
		w.buf = next[:n]
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return total, err
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
	if r.err == nil && r.plain != nil && r.nonce.isZero() {
		// The first chunk on the serial path: a payload of one chunk
		// (most small messages) needs no pipeline and no buffers of
		// its own.
		if r.err = r.next(); r.err == nil {
			n, err := r.writeUnread(dst)
			total += n
			if err != nil {
				return total, err
			}
		}
	}
	if r.err == nil && r.plain == nil { // the last chunk was read
		r.err = io.EOF
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
			return total, err
		}
	}
	return total, nil
}

// pipelined decrypts the chunks left to dst: read, hash, open, write.
func (r *Reader) pipelined(dst io.Writer) (int64, error) {
	p := newPipeline(EncChunkSize)
	raw := p.source(func() (*job, bool) {
		buf := p.get()
		if buf == nil {
			return nil, true
		}
		ct, n, err := r.readChunk()
		j := &job{buf: append(buf[:0], ct...), n: n, err: err}
		return j, err != nil || n.last()
	})
	// Hash the ciphertext before it is decrypted in place. SHA-256 is
	// the slowest step of a signed envelope, so it gets a stage of its
	// own. A chunk that fails later has been hashed too; by then the
	// envelope is refused anyway.
	hashed := p.stage(raw, func(j *job) {
		if j.err == nil && r.Hash != nil {
			r.Hash.Write(j.buf)
		}
	})
	failed := false
	opened := p.stage(hashed, func(j *job) {
		if j.err == nil && !failed {
			out, err := r.open(j.buf[:0], j.buf, j.n)
			if err != nil {
				j.err = err
			} else {
				j.buf = out
			}
		}
		failed = failed || j.err != nil
	})
	total, err := writeJobs(dst, p, opened)
	p.close()
	r.err, r.plain = err, nil
	if err == io.EOF {
		return total, nil
	}
	if err == nil {
		err = errors.New("stream: payload ended without a last chunk")
		r.err = err
	}
	return total, err
}

// writeJobs is WriteTo's last stage: it writes the opened chunks in
// order until the last (io.EOF) or the first error, and recycles every
// buffer.
func writeJobs(dst io.Writer, p *pipeline, opened <-chan *job) (int64, error) {
	var total int64
	var err error
	for j := range opened {
		if err == nil {
			if j.err != nil {
				err = j.err
				p.halt()
			} else {
				n, werr := dst.Write(j.buf)
				total += int64(n)
				if werr != nil {
					err = werr
					p.halt()
				} else if j.n.last() {
					err = io.EOF
				}
			}
		}
		p.free <- j.buf[:cap(j.buf)]
	}
	return total, err
}
