package envelope

import (
	"fmt"
	"io"
	"slices"

	"github.com/tokenseal/tokenseal/envelope/internal/format"
	"github.com/tokenseal/tokenseal/envelope/internal/stream"
)

// RewrapOptions say how Rewrap changes an envelope's recipients.
type RewrapOptions struct {
	// Open decides which original senders are accepted, as for Open.
	Open *OpenOptions
	// Add are recipients to add; a recipient already present is kept once.
	Add []Recipient
	// Remove are the key identifiers whose stanzas are dropped; each must
	// name a stanza of the original (else a *NotRecipientError).
	Remove []KeyID
	// NewSender returns the sender that signs the new envelope, or nil
	// for an anonymous one; a nil NewSender writes an anonymous one too.
	// Rewrap calls it once, after the original's header authenticated
	// and the new recipients are settled and before anything is written,
	// with what the original says of itself (its sender not verified
	// yet: that happens while the payload is copied). An error stops the
	// rewrap with nothing written, so a caller that reserves a serial
	// here burns none on an original refused before.
	NewSender func(original *Opened) (*Sender, error)
	// Armor writes the ASCII armor.
	Armor bool
}

// NotRecipientError is returned by Rewrap when RewrapOptions.Remove names
// a key the original is not addressed to.
type NotRecipientError struct{ KeyID KeyID }

func (e *NotRecipientError) Error() string {
	return "cannot remove " + e.KeyID.String() + ": the envelope is not addressed to it"
}

// Rewrapped describes what Rewrap did.
type Rewrapped struct {
	// Opened describes the original envelope.
	Opened
	// Removed counts the stanzas dropped.
	Removed int
	// Added counts the stanzas added.
	Added int
}

// Rewrap rewrites an envelope for another set of recipients without
// re-encrypting its payload: it unwraps the file key with one of
// identities, verifies the original header, payload and (if signed)
// signature as Open does, and writes to dst a new header (the same salt
// and file key, the stanzas minus opts.Remove plus opts.Add, the new
// sender's serial and timestamp) followed by the payload bytes unchanged
// and, when opts.Sender is set, the new sender's signature.
//
// The new envelope is the rewrapping party's message: its sender is the
// one opts.NewSender returns. When the original was signed and the new
// envelope is signed too, a non-critical previous-sender extension
// records the original sender's key identifier, stream, serial and
// timestamp, as the new signer's own claim; an anonymous new envelope
// never carries one (FORMAT.md, section 2.4: anyone could write it).
//
// A removed recipient who kept the original envelope still holds its file
// key: rewrap is for key rotation, not for revoking past access.
//
// dst may hold a partial envelope when Rewrap fails; write it somewhere
// temporary and keep it only on success.
func Rewrap(dst io.Writer, src io.Reader, identities []Identity, opts *RewrapOptions) (*Rewrapped, error) {
	if opts == nil {
		opts = &RewrapOptions{}
	}
	o, err := openHeader(src, identities, opts.Open)
	if err != nil {
		return nil, err
	}
	defer o.wipe()
	res := &Rewrapped{Opened: o.info()}
	nh, err := rewrapHeader(o, opts, res)
	if err != nil {
		return nil, err
	}
	var sender *Sender
	if opts.NewSender != nil {
		if sender, err = opts.NewSender(&res.Opened); err != nil {
			return nil, err
		}
	}
	if err := signRewrap(nh, o.h.Sender, sender); err != nil {
		return nil, err
	}
	out, armor, raw, err := writeHeader(dst, nh, o.ks, opts.Armor)
	if err != nil {
		return nil, err
	}
	// Verify every chunk (and the original signature) while the payload
	// is copied; the plaintext is discarded. The new signature is of
	// version 2 over the copied chunks' digests: a version 2 original's
	// reader computes them anyway (they do not depend on the header).
	r, err := o.reader(out)
	if err != nil {
		return nil, err
	}
	var sig *signing
	if sender != nil {
		chunks := r.r.Digests
		if chunks == nil {
			chunks = stream.NewDigests()
			r.r.Digests = chunks
		}
		sig = newSigning(sender, nh.Sender, raw, chunks, randReader(nil))
	}
	if _, err := r.WriteTo(io.Discard); err != nil {
		return nil, err
	}
	if sig != nil {
		if err := sig.write(out); err != nil {
			return nil, err
		}
	}
	if armor != nil {
		if err := armor.Close(); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// rewrapHeader is the new header but for its senders: the original's
// chunk size and salt, its stanzas minus opts.Remove plus opts.Add, and
// its other extensions but the previous sender's. It counts what was
// removed and added in res.
func rewrapHeader(o *opened, opts *RewrapOptions, res *Rewrapped) (*format.Header, error) {
	// Always version 2, whatever the original's (FORMAT.md section 9):
	// the payload is encrypted the same way in both.
	nh := &format.Header{Version: format.Version, ChunkLog2: o.h.ChunkLog2, Salt: o.h.Salt}
	remove := map[KeyID]bool{}
	for _, id := range opts.Remove {
		remove[id] = true
	}
	for id := range remove {
		if !slices.ContainsFunc(o.h.Stanzas, func(s *format.Stanza) bool { return s.KeyID == id }) {
			return nil, &NotRecipientError{id}
		}
	}
	set := stanzaSet{h: nh}
	for _, s := range o.h.Stanzas {
		if remove[s.KeyID] {
			res.Removed++
			continue
		}
		set.add(s)
	}
	added, err := set.wrap(o.fileKey, opts.Add)
	if err != nil {
		return nil, err
	}
	res.Added = added
	if len(nh.Stanzas) == 0 {
		return nil, ErrNoRecipientsLeft
	}
	if len(nh.Stanzas) > format.MaxStanzas {
		return nil, fmt.Errorf("too many recipients: %d, the limit is %d", len(nh.Stanzas), format.MaxStanzas)
	}
	for _, e := range o.h.Unknown {
		if e.Type != format.ExtPreviousSender {
			nh.Unknown = append(nh.Unknown, e)
		}
	}
	return nh, nil
}

// signRewrap gives the new header its sender extension, and when both the
// original (prev) and the new envelope are signed, the previous-sender
// extension naming the original's sender: only a signed envelope may
// carry one (FORMAT.md, section 2.4).
func signRewrap(nh *format.Header, prev *format.Sender, sender *Sender) error {
	if sender == nil {
		return nil
	}
	ext, err := sender.extension()
	if err != nil {
		return err
	}
	nh.Sender = ext
	if prev != nil {
		nh.Unknown = append(nh.Unknown, format.Extension{Type: format.ExtPreviousSender, Value: format.MarshalPreviousSender(prev)})
	}
	return nil
}
