package receive

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/internal/format"
)

// inMemory bounds what Stream keeps in memory for a signed envelope: its
// plaintext, if the whole of it fits, and the ciphertext read so far, up
// to twice that, before it goes to a spool file. Small, so that a big
// envelope, whose first chunk alone is over it, adds nothing to the peak
// RSS: it spools from its first read of the payload.
const inMemory = 16 << 10

// Stream opens the envelope in src to dst, a stream that cannot be taken
// back (standard output). An anonymous envelope (if allowed) streams:
// each 64 KiB chunk is written once it authenticated, and a failure ends
// the output early with an error. A signed envelope is first read whole
// and verified, then recorded in the ledger, and only then released.
// While it is read, its ciphertext is kept (in memory up to 32 KiB,
// beyond that in a private, already unlinked spool file), and so is its
// plaintext if it fits in 16 KiB. A small envelope's verified plaintext
// is then written from memory, with no file ever made; a bigger one is
// decrypted again from the spool to dst, with the file key of the first
// pass: the identities are not asked again after the ledger counted the
// envelope. name stands for src in log records.
func (r *Receiver) Stream(name string, src io.Reader, dst io.Writer) error {
	src, isCMS, err := sniff(src)
	if err != nil {
		return err
	}
	if isCMS {
		return r.streamCMS(name, src, dst)
	}
	spool := &lazySpool{limit: 2 * inMemory}
	defer spool.Close()
	tee := &switchWriter{w: spool}
	m := &memo{ids: r.cfg.Identities}
	defer m.wipe()
	opts := r.openOptions()
	rd, err := envelope.Open(io.TeeReader(r.cfg.Watch.Reader(src), tee), []envelope.Identity{m}, opts)
	r.cfg.Watch.Started()
	if err != nil {
		// The spool holds what was read: the header at least.
		return r.notForUs(err, func() *format.Header {
			read, err := spool.reader()
			if err != nil {
				return nil
			}
			return peekHeader(read)
		})
	}
	if rd.Sender == nil {
		// Anonymous (allowed): stream directly, no spool needed.
		tee.w = io.Discard
		_, err := rd.WriteTo(dst)
		return err
	}
	plain := &cappedBuffer{limit: inMemory}
	defer plain.wipe()
	if _, err := rd.WriteTo(plain); err != nil {
		return err
	}
	r.logOpened(name, &rd.Opened)
	if err := r.accept([]*signed{signedOf(name, rd)})[0]; err != nil {
		return err
	}
	if !plain.over {
		// Verified whole and recorded: the first pass's plaintext.
		_, err := dst.Write(plain.b)
		return r.unreleased(rd.Sender, err)
	}
	return r.unreleased(rd.Sender, r.replay(spool, rd, m, opts, dst))
}

// replay decrypts a spooled envelope, verified and recorded already, to
// dst, with the file key m remembers from the first pass.
func (r *Receiver) replay(spool *lazySpool, first *envelope.Reader, m *memo, opts *envelope.OpenOptions, dst io.Writer) error {
	r.cfg.Watch.Spooled()
	src, err := spool.reader()
	if err != nil {
		return err
	}
	m.replay = true
	again, err := envelope.Open(r.cfg.Watch.Reader(src), []envelope.Identity{m}, opts)
	if err != nil {
		return err
	}
	if a, b := again.Sender, first.Sender; a.KeyID != b.KeyID || a.StreamID != b.StreamID || a.Serial != b.Serial || !a.Time.Equal(b.Time) {
		return errors.New("spool file changed under the envelope")
	}
	_, err = again.WriteTo(dst)
	return err
}

// lazySpool keeps what is written to it for a second read: in memory up
// to limit bytes, beyond that in a spool file (see newSpool), made then.
type lazySpool struct {
	limit int
	mem   []byte
	f     *os.File
}

func (s *lazySpool) Write(p []byte) (int, error) {
	if s.f == nil && len(s.mem)+len(p) <= s.limit {
		s.mem = append(s.mem, p...)
		return len(p), nil
	}
	if s.f == nil {
		f, err := newSpool()
		if err != nil {
			return 0, err
		}
		s.f = f
		if _, err := f.Write(s.mem); err != nil {
			return 0, fmt.Errorf("writing spool file: %w", err)
		}
		s.mem = nil
	}
	n, err := s.f.Write(p)
	if err != nil {
		err = fmt.Errorf("writing spool file: %w", err)
	}
	return n, err
}

// reader reads back everything written.
func (s *lazySpool) reader() (io.Reader, error) {
	if s.f == nil {
		return bytes.NewReader(s.mem), nil
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("reading spool file: %w", err)
	}
	return s.f, nil
}

func (s *lazySpool) Close() {
	if s.f != nil {
		s.f.Close()
	}
}

// cappedBuffer keeps what is written to it while it all fits in limit
// bytes; past that it keeps nothing and says so.
type cappedBuffer struct {
	limit int
	b     []byte
	over  bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if !c.over && len(c.b)+len(p) <= c.limit {
		c.b = append(c.b, p...)
	} else if !c.over {
		c.wipe()
		c.over = true
	}
	return len(p), nil
}

// wipe clears the plaintext held.
func (c *cappedBuffer) wipe() {
	clear(c.b)
	c.b = nil
}

// switchWriter is a writer whose destination can be changed.
type switchWriter struct{ w io.Writer }

func (s *switchWriter) Write(p []byte) (int, error) { return s.w.Write(p) }

// memo is an Identity that remembers the file key its identities
// unwrapped, and from which stanza. Once replay is set it asks them no
// more and answers only that stanza, with that key: the second pass over
// a spooled envelope needs no second unwrap (on a token, after the
// ledger counted the envelope), and still checks the header MAC, every
// chunk and the signature again.
type memo struct {
	ids     []envelope.Identity
	replay  bool
	stanza  envelope.Stanza
	fileKey []byte
}

// Unwrap implements envelope.Identity. Like Open, it offers the stanzas
// one at a time, each to every identity in turn.
func (m *memo) Unwrap(stanzas []*envelope.Stanza) ([]byte, error) {
	for _, s := range stanzas {
		if m.replay {
			if m.fileKey != nil && s.Type == m.stanza.Type && s.KeyID == m.stanza.KeyID && bytes.Equal(s.Body, m.stanza.Body) {
				return bytes.Clone(m.fileKey), nil
			}
			continue
		}
		for _, id := range m.ids {
			fk, err := id.Unwrap([]*envelope.Stanza{s})
			if errors.Is(err, envelope.ErrIncorrectIdentity) {
				continue
			}
			if err == nil {
				m.wipe()
				m.stanza = envelope.Stanza{Type: s.Type, KeyID: s.KeyID, Body: bytes.Clone(s.Body)}
				m.fileKey = bytes.Clone(fk)
			}
			return fk, err
		}
	}
	return nil, envelope.ErrIncorrectIdentity
}

func (m *memo) wipe() {
	clear(m.fileKey)
	m.fileKey = nil
}
