package cms

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"io"
	"sync/atomic"
)

// contentChunk is how much content is encrypted or decrypted at a time,
// and the size of the OCTET STRING segments Seal writes. A multiple of 16
// (GCM and CBC need it); 256 KiB measured fastest (BenchmarkGCMStream).
const contentChunk = 256 << 10

// plainReader decrypts the content octets read from src. With hashOnly
// (GCM only) it authenticates without decrypting and returns no data.
// For GCM it releases plaintext before the tag is checked: its callers
// keep it from anyone until tagOK. For CBC it holds back the last block
// until the end and checks the padding in constant time; any failure is
// ErrDecrypt.
//
// A worker goroutine reads and decrypts up to two chunks ahead of the
// reader, so that the caller's parsing, hashing and writing overlap the
// I/O and the cipher. It alone touches src and the cipher state until it
// has delivered the last chunk (or was stopped by close); everything the
// reader needs comes with the chunks.
type plainReader struct {
	// worker side
	src  io.Reader
	gcm  *gcmStream
	cbc  cipher.BlockMode
	held bool     // CBC: last holds the plaintext of the last block read
	last [16]byte // (released with the next chunk, or at the end unpadded)
	wn   int64
	// shared
	hashOnly atomic.Bool
	ready    chan plainChunk
	free     chan []byte
	stop     chan struct{}
	done     chan struct{}
	// reader side
	cur []byte
	out []byte
	n   int64 // content octets read, as of the current chunk
	eof bool
	err error
}

type plainChunk struct {
	buf, out []byte
	n        int64
	eof      bool
	err      error
}

const plainBuffers = 3 // one being read by the caller, two ahead

func newPlainReader(src io.Reader, alg *contentAlg, key []byte, hashOnly bool) (*plainReader, error) {
	p := &plainReader{src: src}
	p.hashOnly.Store(hashOnly)
	var err error
	if alg.gcm {
		p.gcm, err = newGCMStream(key, alg.iv)
		return p, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	p.cbc = cipher.NewCBCDecrypter(block, alg.iv)
	return p, nil
}

func (p *plainReader) Read(b []byte) (int, error) {
	for len(p.out) == 0 {
		if p.err != nil {
			return 0, p.err
		}
		if p.eof {
			return 0, io.EOF
		}
		p.next()
	}
	n := copy(b, p.out)
	p.out = p.out[n:]
	return n, nil
}

// WriteTo lets io.Copy skip a copy.
func (p *plainReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		for len(p.out) == 0 {
			if p.err != nil {
				return total, p.err
			}
			if p.eof {
				return total, nil
			}
			p.next()
		}
		n, err := w.Write(p.out)
		total += int64(n)
		p.out = p.out[n:]
		if err != nil {
			return total, err
		}
	}
}

// next takes the next chunk from the worker (starting it the first time).
func (p *plainReader) next() {
	if p.ready == nil {
		p.ready, p.free = make(chan plainChunk, plainBuffers), make(chan []byte, plainBuffers)
		p.stop, p.done = make(chan struct{}), make(chan struct{})
		for range plainBuffers {
			p.free <- make([]byte, 16+contentChunk)
		}
		go p.worker()
	}
	if p.cur != nil {
		p.free <- p.cur
	}
	c := <-p.ready
	p.cur, p.out, p.n, p.eof, p.err = c.buf, c.out, c.n, c.eof, c.err
}

func (p *plainReader) worker() {
	defer close(p.done)
	for {
		var buf []byte
		select {
		case buf = <-p.free:
		case <-p.stop:
			return
		}
		out, eof, err := p.fill(buf)
		select {
		case p.ready <- plainChunk{buf: buf, out: out, n: p.wn, eof: eof, err: err}:
		case <-p.stop:
			return
		}
		if eof || err != nil {
			return
		}
	}
}

// close stops the worker and waits for it; the reader is unusable after.
func (p *plainReader) close() {
	if p.ready != nil && p.stop != nil {
		close(p.stop)
		<-p.done
		p.stop = nil
	}
}

// fill reads a chunk into buf[16:] and decrypts it (worker side).
func (p *plainReader) fill(buf []byte) (out []byte, eof bool, err error) {
	chunk := buf[16:]
	m, err := io.ReadFull(p.src, chunk)
	switch err {
	case nil:
	case io.EOF, io.ErrUnexpectedEOF:
		eof, err = true, nil
	default:
		return nil, false, err
	}
	p.wn += int64(m)
	c := chunk[:m]
	if p.gcm != nil {
		if p.hashOnly.Load() {
			p.gcm.hash(c)
			return nil, eof, nil
		}
		p.gcm.decrypt(c, c)
		return c, eof, nil
	}
	out, err = p.fillCBC(buf, c, eof)
	return out, eof, err
}

func (p *plainReader) fillCBC(buf, c []byte, eof bool) ([]byte, error) {
	if len(c)%16 != 0 {
		return nil, ErrDecrypt
	}
	// The plaintext of the last block read is held back: it carries the
	// padding, and only the end of the content tells which block is last.
	start, lastAt := 16, len(c)
	if p.held || len(c) == 0 {
		copy(buf[:16], p.last[:])
		start = 0
	}
	var out []byte
	if len(c) > 0 {
		p.cbc.CryptBlocks(c, c)
		copy(p.last[:], buf[lastAt:lastAt+16])
		out = buf[start:lastAt]
	} else {
		if !p.held { // no ciphertext at all
			return nil, ErrDecrypt
		}
		lastAt = 0
	}
	p.held = true
	if !eof {
		return out, nil
	}
	pad, ok := checkPadding(p.last[:])
	if !ok {
		return nil, ErrDecrypt
	}
	return buf[start : lastAt+16-pad], nil
}

// checkPadding checks PKCS #7 padding (RFC 5652 section 6.3) of the last
// block in constant time and returns the padding length.
func checkPadding(block []byte) (int, bool) {
	pad := int(block[15])
	good := subtle.ConstantTimeLessOrEq(1, pad) & subtle.ConstantTimeLessOrEq(pad, 16)
	for i := 0; i < 16; i++ {
		inPad := subtle.ConstantTimeLessOrEq(16-pad, i)
		eq := subtle.ConstantTimeByteEq(block[i], byte(pad))
		good &= eq | (inPad ^ 1)
	}
	return pad, good == 1
}

// tagOK reports whether the GCM tag verifies. It is called after EOF,
// when the worker has stopped.
func (p *plainReader) tagOK(mac []byte) bool {
	return p.gcm != nil && p.eof && p.err == nil && p.gcm.verify(mac)
}

// contentWriter encrypts what is written to it and writes the ciphertext
// to w as definite-length OCTET STRING segments of contentChunk bytes
// (the last shorter), the content of Seal's indefinite [0]
// encryptedContent. Full chunks are encrypted and written by a worker
// goroutine, started at the first full chunk, so that the caller's reads
// (and, in signed mode, its SHA-256) overlap the encryption and the
// writes; close waits for it and does the last chunk itself. Only one of
// them touches the cipher state and w at any time.
type contentWriter struct {
	w    io.Writer
	gcm  *gcmStream
	cbc  cipher.BlockMode
	buf  []byte // segment header room (segHdr bytes), then a chunk, then 16 for padding
	n    int    // bytes in the chunk
	size int64
	err  error
	// the worker
	work    chan []byte
	free    chan []byte
	done    chan struct{}
	werr    atomic.Pointer[error]
	stopped bool
}

const (
	segHdr     = 5
	segBuffers = 3 // one filling, one queued, one being encrypted and written
)

func newContentWriter(w io.Writer, alg *contentAlg, key []byte) (*contentWriter, error) {
	c := &contentWriter{w: w, buf: newSegment()}
	var err error
	if alg.gcm {
		c.gcm, err = newGCMStream(key, alg.iv)
		return c, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	c.cbc = cipher.NewCBCEncrypter(block, alg.iv)
	return c, nil
}

func newSegment() []byte { return make([]byte, segHdr+contentChunk+16) }

func (c *contentWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := fillChunks(&c.buf, &c.n, p, c.handOff)
	c.err = err
	return n, err
}

// fillChunks copies p into the chunk after the segment header room of
// *buf, holding *n bytes, and calls full each time the chunk is full
// (full may replace *buf and must reset *n).
func fillChunks(buf *[]byte, n *int, p []byte, full func() error) (int, error) {
	total := 0
	for len(p) > 0 {
		k := copy((*buf)[segHdr+*n:segHdr+contentChunk], p)
		*n += k
		p = p[k:]
		total += k
		if *n == contentChunk {
			if err := full(); err != nil {
				return total, err
			}
		}
	}
	return total, nil
}

// handOff gives the full chunk to the worker and takes a free buffer.
func (c *contentWriter) handOff() error {
	if c.size += int64(c.n); c.gcm != nil && c.size > gcmMaxBytes {
		return errTooLong
	}
	if err := c.workerErr(); err != nil {
		return err
	}
	if c.work == nil {
		c.work, c.free, c.done = make(chan []byte, segBuffers-2), make(chan []byte, segBuffers), make(chan struct{})
		for range segBuffers - 1 {
			c.free <- newSegment()
		}
		go c.worker()
	}
	c.work <- c.buf
	c.buf, c.n = <-c.free, 0
	return nil
}

func (c *contentWriter) worker() {
	defer close(c.done)
	for seg := range c.work {
		if c.workerErr() == nil {
			if err := c.encryptSegment(seg, contentChunk, false); err != nil {
				c.werr.Store(&err)
			}
		}
		c.free <- seg
	}
}

func (c *contentWriter) workerErr() error {
	if p := c.werr.Load(); p != nil {
		return *p
	}
	return nil
}

// encryptSegment encrypts the n bytes of seg after its segHdr bytes of
// header room (CBC pads into the 16 bytes after them at the end) and
// writes them as one OCTET STRING segment.
func (c *contentWriter) encryptSegment(seg []byte, n int, final bool) error {
	data := seg[segHdr : segHdr+n]
	if c.gcm != nil {
		c.gcm.encrypt(data, data)
	} else {
		if final {
			pad := 16 - n%16
			for i := 0; i < pad; i++ {
				data = append(data, byte(pad))
			}
		}
		c.cbc.CryptBlocks(data, data)
	}
	if len(data) == 0 {
		return nil
	}
	hdr := appendLength([]byte{tagOctetString}, len(data))
	start := segHdr - len(hdr)
	copy(seg[start:], hdr)
	_, err := c.w.Write(seg[start : segHdr+len(data)])
	return err
}

// abort stops the worker after a failure; the message is unusable. It
// may be called more than once.
func (c *contentWriter) abort() {
	if c.work != nil && !c.stopped {
		close(c.work)
		<-c.done
	}
	c.stopped = true
	c.err = errClosed
}

// close waits for the worker, writes the last segment and returns the GCM
// tag (nil for CBC).
func (c *contentWriter) close() ([]byte, error) {
	if c.err != nil {
		err := c.err
		c.abort()
		return nil, err
	}
	c.abort() // waits for the worker
	if err := c.workerErr(); err != nil {
		return nil, err
	}
	c.size += int64(c.n)
	if c.gcm != nil && c.size > gcmMaxBytes {
		return nil, errTooLong
	}
	if err := c.encryptSegment(c.buf, c.n, true); err != nil {
		return nil, err
	}
	if c.gcm != nil {
		return c.gcm.tag(), nil
	}
	return nil, nil
}
