package receive

import (
	"fmt"
	"io"
	"os"
)

// An Output is where one envelope's plaintext (or, for Rewrap, the new
// envelope) goes. Nothing written to it may be visible before Commit:
// a file, say, is written under a temporary name or none.
type Output interface {
	io.Writer
	// Sync is called once everything was written, before the ledger
	// records the envelope: an Output that could still fail later (a
	// full disk) fails here, while a refusal changes nothing.
	Sync() error
	// Commit makes the output visible. It is called only for an
	// envelope that was accepted.
	Commit() error
	// Abort discards the output. It is called instead of Commit, or
	// after a Commit that failed.
	Abort()
}

// Spool returns an Output that keeps what is written in a private
// temporary file, already unlinked, and copies it to w on Commit: for a
// stream that must not see an envelope before it is whole.
func Spool(w io.Writer) (Output, error) {
	f, err := newSpool()
	if err != nil {
		return nil, err
	}
	return &spoolOutput{f: f, w: w}, nil
}

type spoolOutput struct {
	f *os.File
	w io.Writer
}

func (s *spoolOutput) Write(p []byte) (int, error) { return s.f.Write(p) }
func (s *spoolOutput) Sync() error                 { return nil }
func (s *spoolOutput) Abort()                      { s.f.Close() }

func (s *spoolOutput) Commit() error {
	defer s.f.Close()
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("reading spool file: %w", err)
	}
	_, err := io.Copy(s.w, s.f)
	return err
}

// newSpool creates a private temporary file in $TMPDIR that is already
// unlinked: it vanishes with the process, whatever happens. Spools hold
// ciphertext only.
func newSpool() (*os.File, error) {
	f, err := os.CreateTemp("", "tokenseal-spool-*")
	if err != nil {
		return nil, fmt.Errorf("creating spool file: %w", err)
	}
	os.Remove(f.Name())
	return f, nil
}
