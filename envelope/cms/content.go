package cms

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"io"
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
type plainReader struct {
	src      io.Reader
	gcm      *gcmStream
	cbc      cipher.BlockMode
	hashOnly bool
	buf      []byte // 16 bytes of room for a held CBC block, then a chunk
	out      []byte
	held     bool     // CBC: last holds the plaintext of the last block read
	last     [16]byte // (released at the next fill, or at the end unpadded)
	n        int64    // content octets read
	eof      bool
	err      error
}

func newPlainReader(src io.Reader, alg *contentAlg, key []byte, hashOnly bool) (*plainReader, error) {
	p := &plainReader{src: src, hashOnly: hashOnly, buf: make([]byte, 16+contentChunk)}
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
		p.fill()
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
			p.fill()
		}
		n, err := w.Write(p.out)
		total += int64(n)
		p.out = p.out[n:]
		if err != nil {
			return total, err
		}
	}
}

func (p *plainReader) fill() {
	chunk := p.buf[16:]
	m, err := io.ReadFull(p.src, chunk)
	switch err {
	case nil:
	case io.EOF, io.ErrUnexpectedEOF:
		p.eof = true
	default:
		p.err = err
		return
	}
	p.n += int64(m)
	c := chunk[:m]
	if p.gcm != nil {
		if p.hashOnly {
			p.gcm.hash(c)
		} else {
			p.gcm.decrypt(c, c)
			p.out = c
		}
		return
	}
	p.fillCBC(c)
}

func (p *plainReader) fillCBC(c []byte) {
	if len(c)%16 != 0 {
		p.err = ErrDecrypt
		return
	}
	// The plaintext of the last block read is held back: it carries the
	// padding, and only the end of the content tells which block is last.
	start, lastAt := 16, len(c)
	if p.held || len(c) == 0 {
		copy(p.buf[:16], p.last[:])
		start = 0
	}
	if len(c) > 0 {
		p.cbc.CryptBlocks(c, c)
		copy(p.last[:], p.buf[lastAt:lastAt+16])
		p.out = p.buf[start:lastAt]
	} else {
		if !p.held { // no ciphertext at all
			p.err = ErrDecrypt
			return
		}
		lastAt = 0
		p.out = nil
	}
	p.held = true
	if !p.eof {
		return
	}
	pad, ok := checkPadding(p.last[:])
	if !ok {
		p.err = ErrDecrypt
		p.out = nil
		return
	}
	p.out = p.buf[start : lastAt+16-pad]
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

// tagOK reports whether the GCM tag verifies (after EOF).
func (p *plainReader) tagOK(mac []byte) bool {
	return p.gcm != nil && p.eof && p.err == nil && p.gcm.verify(mac)
}

// contentWriter encrypts what is written to it and writes the ciphertext
// to w as definite-length OCTET STRING segments of contentChunk bytes
// (the last shorter), the content of Seal's indefinite [0]
// encryptedContent.
type contentWriter struct {
	w    io.Writer
	gcm  *gcmStream
	cbc  cipher.BlockMode
	buf  []byte // segment header room (5 bytes), then a chunk, then 16 for padding
	n    int    // bytes in the chunk
	size int64
	err  error
}

const segHdr = 5

func newContentWriter(w io.Writer, alg *contentAlg, key []byte) (*contentWriter, error) {
	c := &contentWriter{w: w, buf: make([]byte, segHdr+contentChunk+16)}
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

func (c *contentWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	total := 0
	for len(p) > 0 {
		k := copy(c.buf[segHdr+c.n:segHdr+contentChunk], p)
		c.n += k
		p = p[k:]
		total += k
		if c.n == contentChunk {
			if c.err = c.flush(false); c.err != nil {
				return total, c.err
			}
		}
	}
	return total, nil
}

// flush encrypts the chunk and writes it as one OCTET STRING segment.
func (c *contentWriter) flush(final bool) error {
	c.size += int64(c.n)
	if c.gcm != nil && c.size > gcmMaxBytes {
		return errTooLong
	}
	data := c.buf[segHdr : segHdr+c.n]
	if c.gcm != nil {
		c.gcm.encrypt(data, data)
	} else {
		if final {
			pad := 16 - c.n%16
			for i := 0; i < pad; i++ {
				data = append(data, byte(pad))
			}
		}
		c.cbc.CryptBlocks(data, data)
	}
	c.n = 0
	if len(data) == 0 {
		return nil
	}
	hdr := appendLength([]byte{tagOctetString}, len(data))
	seg := c.buf[segHdr-len(hdr) : segHdr+len(data)]
	copy(seg, hdr)
	_, err := c.w.Write(seg)
	return err
}

// close writes the last segment and returns the GCM tag (nil for CBC).
func (c *contentWriter) close() ([]byte, error) {
	if c.err != nil {
		return nil, c.err
	}
	if c.err = c.flush(true); c.err != nil {
		return nil, c.err
	}
	c.err = errClosed
	if c.gcm != nil {
		return c.gcm.tag(), nil
	}
	return nil, nil
}
