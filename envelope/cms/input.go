package cms

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"io"
	"strings"
)

// Form is how a message is encoded on the wire.
type Form int

const (
	// FormBinary is BER or DER.
	FormBinary Form = iota
	// FormPEM is "-----BEGIN CMS-----" (or PKCS7) around base64.
	FormPEM
	// FormSMIME is a simple S/MIME entity: MIME headers with
	// Content-Type application/pkcs7-mime and base64 transfer encoding.
	FormSMIME
)

func (f Form) String() string {
	return [...]string{"binary (BER/DER)", "PEM", "S/MIME"}[f]
}

const (
	pemBeginCMS   = "-----BEGIN CMS-----"
	pemBeginPKCS7 = "-----BEGIN PKCS7-----"
	pemEndCMS     = "-----END CMS-----"
	pemEndPKCS7   = "-----END PKCS7-----"
	maxLine       = 16 << 10 // longest text line read
	maxMIMEHeader = 64 << 10
	ioBuf         = 64 << 10
)

// Sniff reports whether prefix (the first bytes of a file; 64 are
// enough) looks like a CMS message this package reads: BER/DER
// EnvelopedData or AuthEnvelopedData, PEM with a CMS or PKCS7 label, or
// S/MIME headers. It lets a caller tell CMS from other formats; Open
// still checks everything.
func Sniff(prefix []byte) bool {
	if len(prefix) > 0 && prefix[0] == tagSequence {
		return sniffBinary(prefix)
	}
	t := bytes.TrimLeft(prefix, " \t\r\n")
	if bytes.HasPrefix(t, []byte(pemBeginCMS)) || bytes.HasPrefix(t, []byte(pemBeginPKCS7)) {
		return true
	}
	return looksLikeMIME(t)
}

func sniffBinary(p []byte) bool {
	o := contentTypeAfterSequence(p)
	return o == oidEnvelopedData || o == oidAuthEnvelopedData
}

// contentTypeAfterSequence returns the OID that follows the SEQUENCE
// header at the start of p (a ContentInfo's content type), or "".
func contentTypeAfterSequence(p []byte) oid {
	i := 1
	if i >= len(p) {
		return ""
	}
	switch l := p[i]; {
	case l <= 0x80:
		i++
	case l <= 0x84:
		i += 1 + int(l&0x7f)
	default:
		return ""
	}
	if i+1 >= len(p) || p[i] != tagOID {
		return ""
	}
	n := int(p[i+1])
	if n >= 0x80 || i+2+n > len(p) {
		return ""
	}
	return oid(p[i+2 : i+2+n])
}

func looksLikeMIME(t []byte) bool {
	line := t
	if i := bytes.IndexByte(t, '\n'); i >= 0 {
		line = t[:i]
	}
	l := strings.ToLower(string(line))
	return strings.HasPrefix(l, "mime-version:") || strings.HasPrefix(l, "content-")
}

// input is the decoded message bytes and how to check what follows them.
type input struct {
	form Form
	br   *bufio.Reader // the BER bytes
	raw  *bufio.Reader // the input as given (text forms)
	text *b64Lines     // text forms
}

// openInput detects the form of src and returns a reader of the binary
// message inside it.
func openInput(src io.Reader) (*input, error) {
	raw := bufio.NewReaderSize(src, ioBuf)
	head, err := raw.Peek(512)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return nil, err
	}
	if len(head) == 0 {
		return nil, &ParseError{Msg: "empty input"}
	}
	if head[0] == tagSequence {
		return &input{form: FormBinary, br: raw}, nil
	}
	t := bytes.TrimLeft(head, " \t\r\n")
	in := &input{raw: raw}
	switch {
	case bytes.HasPrefix(t, []byte(pemBeginCMS)), bytes.HasPrefix(t, []byte(pemBeginPKCS7)):
		in.form = FormPEM
		if err := in.startPEM(); err != nil {
			return nil, err
		}
	case looksLikeMIME(t):
		in.form = FormSMIME
		if err := in.startMIME(); err != nil {
			return nil, err
		}
	default:
		return nil, &ParseError{Msg: "not a CMS message (neither BER/DER, PEM nor S/MIME)"}
	}
	in.br = bufio.NewReaderSize(newB64Decoder(in.text), ioBuf)
	return in, nil
}

func (in *input) startPEM() error {
	for {
		line, err := readLine(in.raw)
		if err != nil {
			return err
		}
		switch strings.TrimSpace(line) {
		case "":
			continue
		case pemBeginCMS:
			in.text = &b64Lines{br: in.raw, end: pemEndCMS}
		case pemBeginPKCS7:
			in.text = &b64Lines{br: in.raw, end: pemEndPKCS7}
		default:
			return &ParseError{Msg: "bad PEM header line"}
		}
		return nil
	}
}

// startMIME reads the headers of a simple S/MIME entity (RFC 8551 section
// 3.2, RFC 5322 header fields with folding) up to the blank line.
func (in *input) startMIME() error {
	var fields []string
	total := 0
	for {
		line, err := readLine(in.raw)
		if err != nil {
			return err
		}
		if total += len(line); total > maxMIMEHeader {
			return &ParseError{Msg: "S/MIME header too long"}
		}
		if strings.TrimSpace(line) == "" {
			break
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1] += " " + strings.TrimSpace(line)
			continue
		}
		fields = append(fields, line)
	}
	var ctype, cte string
	for _, f := range fields {
		name, value, ok := strings.Cut(f, ":")
		if !ok {
			return &ParseError{Msg: "bad S/MIME header line"}
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "content-type":
			ctype = strings.ToLower(strings.TrimSpace(value))
		case "content-transfer-encoding":
			cte = strings.ToLower(strings.TrimSpace(value))
		}
	}
	media, _, _ := strings.Cut(ctype, ";")
	media = strings.TrimSpace(media)
	if media != "application/pkcs7-mime" && media != "application/x-pkcs7-mime" {
		return &ParseError{Msg: "S/MIME entity is not application/pkcs7-mime (only simple enveloped messages are read)"}
	}
	if cte != "base64" {
		return &ParseError{Msg: "S/MIME entity is not base64-encoded"}
	}
	in.text = &b64Lines{br: in.raw}
	return nil
}

// readLine reads one line without its line ending.
func readLine(br *bufio.Reader) (string, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull || len(line) > maxLine {
		return "", &ParseError{Msg: "text line too long"}
	}
	if err != nil && (err != io.EOF || len(line) == 0) {
		if err == io.EOF {
			return "", &ParseError{Msg: "message truncated"}
		}
		return "", err
	}
	return strings.TrimRight(string(line), "\r\n"), nil
}

// finish checks that nothing but whitespace follows the message.
func (in *input) finish() error {
	if _, err := in.br.Peek(1); err != io.EOF {
		if err == nil {
			return &ParseError{Msg: "data after the end of the message"}
		}
		return err
	}
	if in.form == FormBinary {
		return nil
	}
	for {
		b, err := in.raw.ReadByte()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if b != ' ' && b != '\t' && b != '\r' && b != '\n' {
			return &ParseError{Msg: "data after the end of the message"}
		}
	}
}

// b64Lines yields the base64 text of a PEM body (up to its END line) or
// an S/MIME body (up to a blank line or the end), without whitespace.
type b64Lines struct {
	br      *bufio.Reader
	end     string // PEM END line; "" for S/MIME
	pending []byte // the unread part of line
	line    []byte
	done    bool
}

// Read fills p with as many lines as fit: base64's decoder decodes what
// one Read gives it, so short reads would make it slow.
func (l *b64Lines) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(l.pending) == 0 {
			if l.done {
				break
			}
			if err := l.nextLine(); err != nil {
				return n, err
			}
			continue
		}
		k := copy(p[n:], l.pending)
		l.pending = l.pending[k:]
		n += k
	}
	if n == 0 && l.done {
		return 0, io.EOF
	}
	return n, nil
}

func (l *b64Lines) nextLine() error {
	line, err := l.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return &ParseError{Msg: "text line too long"}
	}
	if err == io.EOF && len(line) == 0 {
		if l.end != "" {
			return &ParseError{Msg: "PEM END line missing"}
		}
		l.done = true
		return nil
	}
	if err != nil && err != io.EOF {
		return err
	}
	t := bytes.TrimSpace(line)
	switch {
	case l.end != "" && bytes.HasPrefix(t, []byte("-----")):
		if string(t) != l.end {
			return &ParseError{Msg: "bad PEM END line"}
		}
		l.done = true
	case l.end == "" && len(t) == 0:
		l.done = true
	default:
		l.line = append(l.line[:0], t...)
		l.pending = l.line
	}
	return nil
}

// b64Decoder decodes the base64 text b64Lines yields, many lines at a
// time (encoding/base64's streaming decoder scans for line breaks byte by
// byte, and is slow here). Padding may end only the whole text.
type b64Decoder struct {
	src    io.Reader
	text   []byte // text read, its first carry bytes left over from the last fill
	carry  int
	padded bool
	obuf   []byte
	out    []byte
	err    error
}

func newB64Decoder(src io.Reader) *b64Decoder {
	return &b64Decoder{src: src, text: make([]byte, ioBuf), obuf: make([]byte, ioBuf/4*3)}
}

func (d *b64Decoder) Read(p []byte) (int, error) {
	for len(d.out) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		d.fill()
	}
	n := copy(p, d.out)
	d.out = d.out[n:]
	return n, nil
}

func (d *b64Decoder) fill() {
	n, err := io.ReadFull(d.src, d.text[d.carry:])
	eof := err == io.EOF || err == io.ErrUnexpectedEOF
	if err != nil && !eof {
		d.err = err
		return
	}
	total := d.carry + n
	use := total - total%4
	if (eof && use != total) || (use > 0 && d.padded) {
		d.err = &ParseError{Msg: "bad base64 in the text form"}
		return
	}
	m, derr := base64.StdEncoding.Decode(d.obuf, d.text[:use])
	if derr != nil {
		d.err = &ParseError{Msg: "bad base64 in the text form"}
		return
	}
	d.padded = use > 0 && d.text[use-1] == '='
	d.out = d.obuf[:m]
	d.carry = copy(d.text, d.text[use:total])
	if eof {
		d.err = io.EOF
	}
}
