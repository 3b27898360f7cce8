package receive

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/cms"
	"github.com/tokenseal/tokenseal/envelope/state"
)

// CMS messages (RFC 5652, package envelope/cms) are one more kind of
// input: told from tokenseal envelopes by their first bytes, they go
// through the same order of things. The message is verified whole (the
// AES-GCM tag of AuthEnvelopedData; the signature of signed content, by a
// trusted sender), then the signer's signingTime is checked against the
// freshness limits and its stamp (stream and serial) recorded in the
// ledger, and only then is the plaintext released: an Output committed,
// or, for a stream, the spooled ciphertext decrypted. Unsigned messages
// follow Config.AllowAnonymous; EnvelopedData, whose content is not
// authenticated, is refused unless CMS.AllowUnauthenticated.

// CMS says how a Receiver treats CMS messages.
type CMS struct {
	// Keys finds the private key a recipient info names (a token's keys:
	// keyring.Keyring). Its keys report a refusal of the data as
	// envelope.ErrUnwrap, as envelope identities do; any other error of
	// theirs (a token that went away) is passed on, not taken for a bad
	// message. Without Keys, CMS input is refused.
	Keys cms.KeyFinder
	// AllowUnauthenticated accepts EnvelopedData (AES-CBC). Its content
	// has no integrity protection: unless it is signed, anyone can
	// change it undetected.
	AllowUnauthenticated bool
	// AllowUnstamped accepts signed messages from trusted senders that
	// lack tokenseal's stamp attribute (made by other tools): their
	// signature and signingTime are checked, but they have no stream
	// and serial for the ledger, so a copy is accepted again.
	AllowUnstamped bool
}

// ErrUnstamped refuses a signed CMS message without tokenseal's stamp
// attribute unless CMS.AllowUnstamped.
var ErrUnstamped error = &rejection{"signed CMS message has no tokenseal stamp (stream and serial), so it cannot be checked for replays; refusing without allow-unstamped"}

var errNoCMSKeys = &rejection{"input is a CMS message, and no keys to open CMS with were given"}

// rejection is a refusal of the message: it matches envelope.ErrRejected.
type rejection struct{ msg string }

func (e *rejection) Error() string        { return e.msg }
func (e *rejection) Is(target error) bool { return target == envelope.ErrRejected }

// sniffLen is how much of an input tells CMS from a tokenseal envelope.
const sniffLen = 64

// sniff reads the start of src and reports whether it is a CMS message.
// It returns a reader of the whole input: src itself, sought back, when
// it can seek; else the bytes read followed by the rest.
func sniff(src io.Reader) (io.Reader, bool, error) {
	head := make([]byte, sniffLen)
	n, err := io.ReadFull(src, head)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return nil, false, err
	}
	head = head[:n]
	isCMS := cms.Sniff(head)
	if s, ok := src.(io.Seeker); ok && n > 0 {
		if _, err := s.Seek(-int64(n), io.SeekCurrent); err == nil {
			return src, isCMS, nil
		}
	}
	return io.MultiReader(bytes.NewReader(head), src), isCMS, nil
}

// cmsOpen reads a CMS message up to its content and recovers its content
// key with cfg.CMS.Keys.
func (r *Receiver) cmsOpen(src io.Reader) (*cms.Decrypter, error) {
	if r.cfg.CMS.Keys == nil {
		return nil, errNoCMSKeys
	}
	d, err := cms.Open(r.cfg.Watch.Reader(src), r.cfg.CMS.Keys, &cms.OpenOptions{
		AllowUnauthenticated: r.cfg.CMS.AllowUnauthenticated,
		AllowUnsigned:        r.cfg.AllowAnonymous,
		Senders:              cmsSenders{r},
	})
	return d, keyError(err)
}

// keyError passes on a key's own failure behind cms.ErrDecrypt when it
// is not the key's refusal of the data (see CMS.Keys).
func keyError(err error) error {
	if errors.Is(err, cms.ErrDecrypt) {
		if cause := errors.Unwrap(err); cause != nil && !errors.Is(cause, envelope.ErrUnwrap) {
			return cause
		}
	}
	return err
}

// cmsSenders is the Receiver's trusted senders as cms looks them up.
type cmsSenders struct{ r *Receiver }

func (s cmsSenders) SenderKey(id envelope.KeyID) (crypto.PublicKey, error) {
	pub, err := s.r.sender(id)
	if errors.Is(err, envelope.ErrUnknownSender) {
		return nil, nil
	}
	return pub, err
}

// cmsSigned is what the ledger records of a stamped CMS message from
// trusted sender s: its digest (state.EnvelopeDigest of the digest its
// signature covers and the signature) lets Reopen open that same signed
// message again.
func cmsSigned(name string, sender *envelope.SenderInfo, s *cms.SenderInfo) *signed {
	if sender == nil {
		return nil
	}
	return &signed{name: name, sender: sender, digest: state.EnvelopeDigest(s.Signed, s.Signature)}
}

// cmsSender applies the sender rules to a message that verified: unsigned
// content was allowed by cmsOpen's options; signed content without the
// stamp is refused unless AllowUnstamped, and then only its freshness is
// checked, here; stamped content gives the SenderInfo accept checks for
// freshness and records.
func (r *Receiver) cmsSender(name string, d *cms.Decrypter, res *cms.Result) (*envelope.SenderInfo, error) {
	r.logCMS(name, d, res)
	s := res.Sender
	switch {
	case s == nil:
		return nil, nil
	case !s.HasStamp && !r.cfg.CMS.AllowUnstamped:
		return nil, ErrUnstamped
	case !s.HasStamp:
		return nil, state.CheckFreshness(s.SigningTime, r.cfg.Now(), r.cfg.MaxAge, r.cfg.MaxSkew)
	}
	return &envelope.SenderInfo{KeyID: s.KeyID, StreamID: s.StreamID, Serial: s.Serial, Time: s.SigningTime}, nil
}

func (r *Receiver) logCMS(name string, d *cms.Decrypter, res *cms.Result) {
	if r.cfg.Log == nil {
		return
	}
	attrs := []any{"input", name, "recipient", d.Recipient().String(), "authenticated", d.Authenticated()}
	if s := res.Sender; s != nil {
		attrs = append(attrs, "sender", s.KeyID.String(), "stamped", s.HasStamp, "stream", s.StreamID, "serial", s.Serial,
			"signing_time", s.SigningTime.UTC().Format(time.RFC3339))
	}
	r.cfg.Log.Debug("cms message verified", attrs...)
}

// streamCMS is Stream for a CMS message: its content octets (ciphertext)
// are spooled while everything is verified, the sender checked and
// recorded, and only then decrypted from the spool to dst. AES-GCM's tag
// comes after the whole content, so even an unsigned message is spooled.
func (r *Receiver) streamCMS(name string, src io.Reader, dst io.Writer) error {
	d, err := r.cmsOpen(src)
	r.cfg.Watch.Started()
	if err != nil {
		return err
	}
	spool, err := newSpool()
	if err != nil {
		return err
	}
	defer spool.Close()
	r.cfg.Watch.Spooled()
	v, err := d.VerifyTo(spool)
	if err != nil {
		return keyError(err)
	}
	sender, err := r.cmsSender(name, d, v.Result())
	if err != nil {
		return err
	}
	if s := cmsSigned(name, sender, v.Result().Sender); s != nil {
		if err := r.accept([]*signed{s})[0]; err != nil {
			return err
		}
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return r.unreleased(sender, fmt.Errorf("reading spool file: %w", err))
	}
	return r.unreleased(sender, v.DecryptFrom(r.cfg.Watch.Reader(spool), dst))
}

// verifyCMS is verify for a CMS message (see decryptCMS).
func (r *Receiver) verifyCMS(v *verified, it Item, src io.Reader) *verified {
	v.out, v.signed, v.err = r.decryptCMS(it, src)
	return v
}

// decryptCMS decrypts a CMS message into its Output, which DecryptTo
// makes sure holds nothing unless the message verified, syncs it, and
// applies the sender rules before the committer records the sender. On
// error the Output is aborted.
func (r *Receiver) decryptCMS(it Item, src io.Reader) (Output, *signed, error) {
	d, err := r.cmsOpen(src)
	r.cfg.Watch.Started()
	if err != nil {
		return nil, nil, err
	}
	out, err := it.Create()
	if err != nil {
		return nil, nil, err
	}
	res, err := d.DecryptTo(pending{out})
	if err == nil {
		err = out.Sync()
	}
	var sender *envelope.SenderInfo
	if err == nil {
		sender, err = r.cmsSender(it.Name, d, res)
	}
	if err != nil {
		out.Abort()
		return nil, nil, keyError(err)
	}
	return out, cmsSigned(it.Name, sender, res.Sender), nil
}

// pending is an Output as cms.PendingOutput; the caller aborts it when
// DecryptTo fails (Discard leaves that to it, so it happens once).
type pending struct{ Output }

func (pending) Discard() error { return nil }
