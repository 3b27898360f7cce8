package cms

import (
	"bufio"
	"io"

	"golang.org/x/crypto/cryptobyte"
)

// The streaming BER reader. CMS messages are BER: lengths may be
// indefinite (terminated by two zero octets) and strings may be split
// into segments, which is what lets a writer stream content of unknown
// size. berReader walks such a message from an io.Reader one header at a
// time, keeping a stack of the constructed elements it is inside so that
// no element runs past its parent. Small elements (algorithm identifiers,
// recipient infos, attributes) are read whole, under a size cap, and
// normalized to DER (definite lengths, OCTET STRING segments joined) so
// that cryptobyte parses them; the encrypted content is never held whole.

// BER identifier octets used here (class | constructed | tag number).
const (
	tagInteger     = 0x02
	tagBitString   = 0x03
	tagOctetString = 0x04
	tagNull        = 0x05
	tagOID         = 0x06
	tagSequence    = 0x30
	tagSet         = 0x31
	tagConsOctets  = 0x24 // constructed OCTET STRING
	tagUTCTime     = 0x17
	tagGenTime     = 0x18
	tagCtx0Prim    = 0x80
	tagCtx0Cons    = 0xa0
	tagCtx1Prim    = 0x81
	tagCtx1Cons    = 0xa1
	tagCtx2Cons    = 0xa2
	tagCtx3Cons    = 0xa3
	tagCtx4Cons    = 0xa4
	classContext   = 0x80
	flagCons       = 0x20
	maxDepth       = 32      // nesting of constructed elements
	maxLength      = 1 << 46 // any definite length above this is refused (64 TiB)
	maxSmall       = 1 << 20 // default cap on an element read whole
	maxRecipients  = 4 << 20 // cap on the whole RecipientInfos SET
	maxSegmentNest = 4       // constructed OCTET STRING inside constructed
)

type header struct {
	tag    byte
	length int64 // -1: indefinite
	hlen   int
}

func (h header) constructed() bool { return h.tag&flagCons != 0 }

type frame struct {
	end int64 // offset just past the element's content; -1: indefinite
}

type berReader struct {
	r      *bufio.Reader
	off    int64
	frames []frame
	indef  bool // an indefinite length was seen
}

func newBERReader(r *bufio.Reader) *berReader { return &berReader{r: r} }

func (b *berReader) fail(msg string) error { return &ParseError{Offset: b.off, Msg: msg} }

// eofErr turns the end of the input inside the message into a parse error.
func (b *berReader) eofErr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return b.fail("message truncated")
	}
	return err
}

func (b *berReader) readByte() (byte, error) {
	c, err := b.r.ReadByte()
	if err != nil {
		return 0, b.eofErr(err)
	}
	b.off++
	return c, nil
}

func (b *berReader) readFull(p []byte) error {
	n, err := io.ReadFull(b.r, p)
	b.off += int64(n)
	if err != nil {
		return b.eofErr(err)
	}
	return nil
}

// limit is the end offset of the innermost definite-length frame, or -1.
func (b *berReader) limit() int64 {
	for i := len(b.frames) - 1; i >= 0; i-- {
		if b.frames[i].end >= 0 {
			return b.frames[i].end
		}
	}
	return -1
}

// readHeader reads an identifier and a length and checks that a definite
// length fits inside the innermost definite-length frame.
func (b *berReader) readHeader() (header, error) {
	start := b.off
	if lim := b.limit(); lim >= 0 && start >= lim {
		return header{}, b.fail("element runs past its enclosing element")
	}
	tag, err := b.readByte()
	if err != nil {
		return header{}, err
	}
	if tag&0x1f == 0x1f {
		return header{}, b.fail("high tag numbers are not used in CMS")
	}
	l0, err := b.readByte()
	if err != nil {
		return header{}, err
	}
	h := header{tag: tag}
	switch {
	case l0 < 0x80:
		h.length = int64(l0)
	case l0 == 0x80:
		if tag&flagCons == 0 {
			return header{}, b.fail("indefinite length on a primitive element")
		}
		h.length = -1
		b.indef = true
	case l0 == 0xff:
		return header{}, b.fail("reserved length octet")
	default:
		n := int(l0 & 0x7f)
		if n > 8 {
			return header{}, b.fail("length too large")
		}
		var v uint64
		for i := 0; i < n; i++ {
			c, err := b.readByte()
			if err != nil {
				return header{}, err
			}
			v = v<<8 | uint64(c)
		}
		if v > maxLength {
			return header{}, b.fail("length too large")
		}
		h.length = int64(v)
	}
	h.hlen = int(b.off - start)
	if lim := b.limit(); h.length >= 0 && lim >= 0 && b.off+h.length > lim {
		return header{}, b.fail("element runs past its enclosing element")
	}
	return h, nil
}

// expect reads a header and checks its identifier.
func (b *berReader) expect(tag byte, what string) (header, error) {
	h, err := b.readHeader()
	if err != nil {
		return h, err
	}
	if h.tag != tag {
		return h, b.fail("expected " + what)
	}
	return h, nil
}

// enter makes a constructed element just read the current frame.
func (b *berReader) enter(h header) error {
	if !h.constructed() {
		return b.fail("expected a constructed element")
	}
	if len(b.frames) >= maxDepth {
		return b.fail("elements nested too deeply")
	}
	end := int64(-1)
	if h.length >= 0 {
		end = b.off + h.length
	}
	b.frames = append(b.frames, frame{end: end})
	return nil
}

// atEnd reports whether the current frame has no more elements. For an
// indefinite frame it peeks for the end-of-contents octets.
func (b *berReader) atEnd() (bool, error) {
	f := b.frames[len(b.frames)-1]
	if f.end >= 0 {
		return b.off >= f.end, nil
	}
	p, err := b.r.Peek(2)
	if err != nil {
		return false, b.eofErr(err)
	}
	return p[0] == 0 && p[1] == 0, nil
}

// leave closes the current frame: a definite one must be used up
// exactly, an indefinite one must end with its end-of-contents octets.
func (b *berReader) leave() error {
	f := b.frames[len(b.frames)-1]
	if f.end >= 0 {
		if b.off != f.end {
			return b.fail("unexpected data at the end of an element")
		}
	} else {
		var eoc [2]byte
		if err := b.readFull(eoc[:]); err != nil {
			return err
		}
		if eoc != [2]byte{} {
			return b.fail("unexpected data at the end of an element")
		}
	}
	b.frames = b.frames[:len(b.frames)-1]
	return nil
}

// slurp reads the element whose header h was just read, whole, and
// returns it normalized to DER: definite lengths in their shortest form
// and constructed OCTET STRINGs joined into one primitive. It refuses an
// element of more than budget bytes as read.
func (b *berReader) slurp(h header, budget int) ([]byte, error) {
	left := budget - h.hlen
	content, err := b.slurpContent(h, &left, 0)
	if err != nil {
		return nil, err
	}
	tag := h.tag
	if tag == tagConsOctets {
		tag = tagOctetString
	}
	var out cryptobyte.Builder
	out.AddUint8(tag)
	addLength(&out, len(content))
	out.AddBytes(content)
	return out.Bytes()
}

func (b *berReader) slurpContent(h header, left *int, depth int) ([]byte, error) {
	if !h.constructed() {
		if h.length > int64(*left) {
			return nil, b.fail("element too large")
		}
		*left -= int(h.length)
		buf := make([]byte, h.length)
		if err := b.readFull(buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	if depth >= maxDepth {
		return nil, b.fail("elements nested too deeply")
	}
	if h.length > int64(*left) {
		return nil, b.fail("element too large")
	}
	if err := b.enter(h); err != nil {
		return nil, err
	}
	var out []byte
	for {
		end, err := b.atEnd()
		if err != nil {
			return nil, err
		}
		if end {
			break
		}
		ch, err := b.readHeader()
		if err != nil {
			return nil, err
		}
		if *left -= ch.hlen; *left < 0 {
			return nil, b.fail("element too large")
		}
		c, err := b.slurpContent(ch, left, depth+1)
		if err != nil {
			return nil, err
		}
		if h.tag == tagConsOctets {
			// A segment of a constructed OCTET STRING is an OCTET STRING.
			if ch.tag != tagOctetString && ch.tag != tagConsOctets {
				return nil, b.fail("constructed OCTET STRING holds something else")
			}
			out = append(out, c...)
			continue
		}
		tag := ch.tag
		if tag == tagConsOctets {
			tag = tagOctetString
		}
		out = appendTLV(out, tag, c)
	}
	if h.length < 0 {
		*left -= 2
		if *left < 0 {
			return nil, b.fail("element too large")
		}
	}
	if err := b.leave(); err != nil {
		return nil, err
	}
	return out, nil
}

// readSmall reads the next element whole (see slurp) and checks its tag.
func (b *berReader) readSmall(tag byte, what string, budget int) ([]byte, error) {
	h, err := b.expect(tag, what)
	if err != nil {
		return nil, err
	}
	return b.slurp(h, budget)
}

// peekTag returns the identifier octet of the next element without
// reading it; ok is false at the end of the current frame.
func (b *berReader) peekTag() (tag byte, ok bool, err error) {
	end, err := b.atEnd()
	if err != nil || end {
		return 0, false, err
	}
	p, err := b.r.Peek(1)
	if err != nil {
		return 0, false, b.eofErr(err)
	}
	return p[0], true, nil
}

// appendTLV appends a DER element.
func appendTLV(out []byte, tag byte, content []byte) []byte {
	out = append(out, tag)
	out = appendLength(out, len(content))
	return append(out, content...)
}

func appendLength(out []byte, n int) []byte {
	switch {
	case n < 0x80:
		return append(out, byte(n))
	case n < 1<<8:
		return append(out, 0x81, byte(n))
	case n < 1<<16:
		return append(out, 0x82, byte(n>>8), byte(n))
	case n < 1<<24:
		return append(out, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
	return append(out, 0x84, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func addLength(b *cryptobyte.Builder, n int) {
	b.AddBytes(appendLength(nil, n))
}

// octetReader reads the content octets of an OCTET STRING (or an element
// implicitly tagged as one) whose header was just read: one primitive
// definite-length run, or the segments of a constructed one, nested at
// most maxSegmentNest deep. It never buffers more than its caller's p.
type octetReader struct {
	b      *berReader
	left   int64 // bytes left in the current primitive segment
	depth  int   // constructed levels entered
	done   bool
	err    error
	total  int64
	maxLen int64 // refuse content longer than this
}

func newOctetReader(b *berReader, h header, maxLen int64) (*octetReader, error) {
	o := &octetReader{b: b, maxLen: maxLen}
	if !h.constructed() {
		o.left = h.length
		if o.left > maxLen {
			return nil, b.fail("content too long")
		}
		return o, nil
	}
	if err := b.enter(h); err != nil {
		return nil, err
	}
	o.depth = 1
	return o, nil
}

// next moves to the next primitive segment, or sets done.
func (o *octetReader) next() error {
	for o.left == 0 {
		if o.depth == 0 {
			o.done = true
			return nil
		}
		end, err := o.b.atEnd()
		if err != nil {
			return err
		}
		if end {
			if err := o.b.leave(); err != nil {
				return err
			}
			o.depth--
			continue
		}
		h, err := o.b.readHeader()
		if err != nil {
			return err
		}
		switch h.tag {
		case tagOctetString:
			o.left = h.length
		case tagConsOctets:
			if o.depth >= maxSegmentNest {
				return o.b.fail("OCTET STRING segments nested too deeply")
			}
			if err := o.b.enter(h); err != nil {
				return err
			}
			o.depth++
		default:
			return o.b.fail("constructed OCTET STRING holds something else")
		}
	}
	return nil
}

func (o *octetReader) Read(p []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	n := 0
	for n < len(p) {
		if o.left == 0 {
			if o.done {
				break
			}
			if err := o.next(); err != nil {
				o.err = err
				return n, err
			}
			continue
		}
		want := int64(len(p) - n)
		if want > o.left {
			want = o.left
		}
		m, err := io.ReadFull(o.b.r, p[n:n+int(want)])
		o.b.off += int64(m)
		o.left -= int64(m)
		n += m
		o.total += int64(m)
		if err != nil {
			o.err = o.b.eofErr(err)
			return n, o.err
		}
		if o.total > o.maxLen {
			o.err = o.b.fail("content too long")
			return n, o.err
		}
	}
	if n == 0 && o.done {
		return 0, io.EOF
	}
	return n, nil
}
