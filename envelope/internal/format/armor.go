package format

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
)

// The armor: the binary envelope in standard base64 with padding, 64
// characters a line, between these lines, every line ending in "\n". There
// is exactly one armored form of each binary envelope; see FORMAT.md.
const (
	ArmorBegin    = "-----BEGIN TOKENSEAL ENVELOPE-----"
	ArmorEnd      = "-----END TOKENSEAL ENVELOPE-----"
	armorCols     = 64
	armorRawBytes = armorCols / 4 * 3 // bytes of binary per full line
)

var b64 = base64.StdEncoding.Strict()

// ArmoredWriter encodes to the armor. Close writes the last line and the
// end marker; it does not close the underlying writer.
type ArmoredWriter struct {
	dst     io.Writer
	pending []byte // < armorRawBytes bytes not yet encoded
	line    [armorCols + 1]byte
	started bool
	err     error
}

// NewArmoredWriter returns a writer that armors what is written to it.
func NewArmoredWriter(dst io.Writer) *ArmoredWriter {
	return &ArmoredWriter{dst: dst, pending: make([]byte, 0, armorRawBytes)}
}

func (w *ArmoredWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if !w.started {
		w.started = true
		if _, w.err = io.WriteString(w.dst, ArmorBegin+"\n"); w.err != nil {
			return 0, w.err
		}
	}
	n := len(p)
	var out bytes.Buffer
	for len(p) > 0 {
		k := copy(w.pending[len(w.pending):armorRawBytes], p)
		w.pending = w.pending[:len(w.pending)+k]
		p = p[k:]
		if len(w.pending) == armorRawBytes {
			b64.Encode(w.line[:armorCols], w.pending)
			w.line[armorCols] = '\n'
			out.Write(w.line[:])
			w.pending = w.pending[:0]
		}
	}
	if out.Len() > 0 {
		if _, w.err = w.dst.Write(out.Bytes()); w.err != nil {
			return 0, w.err
		}
	}
	return n, nil
}

// Close writes the final line and the end marker.
func (w *ArmoredWriter) Close() error {
	if w.err != nil {
		return w.err
	}
	if !w.started {
		return errors.New("armor: nothing written")
	}
	var tail []byte
	if len(w.pending) > 0 {
		n := b64.EncodedLen(len(w.pending))
		b64.Encode(w.line[:n], w.pending)
		tail = append(tail, w.line[:n]...)
		tail = append(tail, '\n')
	}
	tail = append(tail, ArmorEnd+"\n"...)
	_, w.err = w.dst.Write(tail)
	if w.err == nil {
		w.err = errors.New("armor: writer closed")
		return nil
	}
	return w.err
}

// ArmoredReader decodes the armor strictly: any deviation from the one
// canonical encoding is an error, and so is anything after the end marker.
type ArmoredReader struct {
	src    *bufio.Reader
	buf    [armorRawBytes]byte
	unread []byte
	state  int // 0 before begin, 1 in body, 2 after a short line, 3 done
	err    error
}

// NewArmoredReader returns a reader of the binary envelope armored in src.
func NewArmoredReader(src io.Reader) *ArmoredReader {
	return &ArmoredReader{src: bufio.NewReaderSize(src, 64<<10)}
}

func armorErr(what string) error { return perr("armor: %s", what) }

func (r *ArmoredReader) readLine() ([]byte, error) {
	line, err := r.src.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, armorErr("line too long")
	}
	if err == io.EOF {
		return nil, armorErr("truncated")
	}
	if err != nil {
		return nil, err
	}
	return line[:len(line)-1], nil
}

func (r *ArmoredReader) Read(p []byte) (int, error) {
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

func (r *ArmoredReader) next() error {
	switch r.state {
	case 0:
		line, err := r.readLine()
		if err != nil {
			return err
		}
		if string(line) != ArmorBegin {
			return armorErr("missing begin line")
		}
		r.state = 1
		return nil
	case 3:
		return io.EOF
	}
	line, err := r.readLine()
	if err != nil {
		return err
	}
	if string(line) == ArmorEnd {
		if _, err := r.src.ReadByte(); err != io.EOF {
			return armorErr("data after end line")
		}
		r.state = 3
		return io.EOF
	}
	if r.state == 2 {
		return armorErr("line after the final short line")
	}
	if len(line) == 0 || len(line) > armorCols || len(line)%4 != 0 {
		return armorErr(fmt.Sprintf("body line of %d characters", len(line)))
	}
	// Strict base64 still skips CR (and LF): refuse it here, or a line
	// padded with CRs would decode to fewer bytes and pass as full.
	if bytes.IndexByte(line, '\r') >= 0 {
		return armorErr("CR in a body line")
	}
	n, err := b64.Decode(r.buf[:], line)
	if err != nil {
		return armorErr("invalid base64")
	}
	if len(line) < armorCols || line[len(line)-1] == '=' {
		r.state = 2
	}
	r.unread = r.buf[:n]
	return nil
}
