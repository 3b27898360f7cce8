package envelope

import (
	"fmt"
	"io"

	"github.com/tokenseal/tokenseal/envelope/internal/format"
	"github.com/tokenseal/tokenseal/envelope/internal/stream"
)

// RewrapOptions say how Rewrap changes an envelope's recipients.
type RewrapOptions struct {
	// Open decides which original senders are accepted, as for Open.
	Open *OpenOptions
	// Add are recipients to add; a recipient already present is kept once.
	Add []Recipient
	// Remove are the key identifiers whose stanzas are dropped.
	Remove []KeyID
	// Sender signs the new envelope; nil writes an anonymous one.
	Sender *Sender
	// Armor writes the ASCII armor.
	Armor bool
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
// The new envelope is the rewrapping party's message: its sender is
// opts.Sender. When the original was signed, a non-critical
// previous-sender extension records the original sender's key identifier,
// stream, serial and timestamp, as the rewrapping party's own statement.
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
	if opts.Sender != nil {
		chunks := r.r.Digests
		if chunks == nil {
			chunks = stream.NewDigests()
			r.r.Digests = chunks
		}
		sig = newSigning(opts.Sender, nh.Sender, raw, chunks, randReader(nil))
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

// rewrapHeader is the new header: the original's chunk size and salt,
// its stanzas minus opts.Remove plus opts.Add, its other extensions with
// a previous-sender extension for its sender, and the new sender's. It
// counts what was removed and added in res.
func rewrapHeader(o *opened, opts *RewrapOptions, res *Rewrapped) (*format.Header, error) {
	// Always version 2, whatever the original's (FORMAT.md section 9):
	// the payload is encrypted the same way in both.
	nh := &format.Header{Version: format.Version, ChunkLog2: o.h.ChunkLog2, Salt: o.h.Salt}
	remove := map[KeyID]bool{}
	for _, id := range opts.Remove {
		remove[id] = true
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
	if prev := o.h.Sender; prev != nil {
		nh.Unknown = append(nh.Unknown, format.Extension{Type: format.ExtPreviousSender, Value: format.MarshalPreviousSender(prev)})
	}
	for _, e := range o.h.Unknown {
		if e.Type != format.ExtPreviousSender {
			nh.Unknown = append(nh.Unknown, e)
		}
	}
	if opts.Sender != nil {
		ext, err := opts.Sender.extension()
		if err != nil {
			return nil, err
		}
		nh.Sender = ext
	}
	return nh, nil
}
