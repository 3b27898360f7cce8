package receive

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/internal/format"
)

// Stream opens the envelope in src to dst, a stream that cannot be taken
// back (standard output). An anonymous envelope (if allowed) streams:
// each 64 KiB chunk is written once it authenticated, and a failure ends
// the output early with an error. A signed envelope is first read whole
// into a private, already unlinked spool file (ciphertext only), verified
// and recorded in the ledger, and only then decrypted again from the
// spool to dst, with the file key of the first pass: the identities are
// not asked again after the ledger counted the envelope. name stands for
// src in log records.
func (r *Receiver) Stream(name string, src io.Reader, dst io.Writer) error {
	src, isCMS, err := sniff(src)
	if err != nil {
		return err
	}
	if isCMS {
		return r.streamCMS(name, src, dst)
	}
	spool, err := newSpool()
	if err != nil {
		return err
	}
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
			if _, err := spool.Seek(0, io.SeekStart); err != nil {
				return nil
			}
			return peekHeader(spool)
		})
	}
	if rd.Sender == nil {
		// Anonymous (allowed): stream directly, no spool needed.
		tee.w = io.Discard
		_, err := rd.WriteTo(dst)
		return err
	}
	r.cfg.Watch.Spooled()
	if _, err := rd.WriteTo(io.Discard); err != nil {
		return err
	}
	r.logOpened(name, &rd.Opened)
	if err := r.accept([]*signed{signedOf(name, rd)})[0]; err != nil {
		return err
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("reading spool file: %w", err)
	}
	return r.unreleased(rd.Sender, r.replay(spool, rd, m, opts, dst))
}

// replay decrypts the spooled envelope, verified and recorded already,
// to dst, with the file key m remembers from the first pass.
func (r *Receiver) replay(spool io.Reader, first *envelope.Reader, m *memo, opts *envelope.OpenOptions, dst io.Writer) error {
	m.replay = true
	again, err := envelope.Open(r.cfg.Watch.Reader(spool), []envelope.Identity{m}, opts)
	if err != nil {
		return err
	}
	if a, b := again.Sender, first.Sender; a.KeyID != b.KeyID || a.StreamID != b.StreamID || a.Serial != b.Serial || !a.Time.Equal(b.Time) {
		return errors.New("spool file changed under the envelope")
	}
	_, err = again.WriteTo(dst)
	return err
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
