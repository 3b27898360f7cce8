package receive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/state"
)

// RewrapPolicy says which originals a Receiver rewraps, beyond what it
// opens (the same identities, trusted senders and anonymous rule).
//
// Rewrapping turns an original into a new message of the rewrapping
// party's, with a new serial and timestamp when it signs: fed an old
// original again, a rotation job would emit a fresh envelope each time,
// and fed an anonymous one it would lend its signature to anyone's
// content. So by default a signing rewrap rewraps a signed original once
// per store (its sender key, stream and serial are recorded), an original
// dated in the future beyond Config.MaxSkew or at an impossible time is
// refused, and an anonymous original is never signed. A rewrap to an
// anonymous envelope records nothing: what it writes carries no replay
// protection for anyone to launder.
type RewrapPolicy struct {
	// Again rewraps an original this store recorded as rewrapped before.
	Again bool
	// SignAnonymous lets a signing rewrap sign an anonymous original:
	// the new envelope then vouches, under the rewrapping key, for
	// content whose author nobody authenticated.
	SignAnonymous bool
	// MaxAge, when not zero, refuses a signed original older than it.
	// Zero means no limit: rotation is for stored envelopes of any age.
	MaxAge time.Duration
}

// ErrAnonymousOriginal is the refusal to sign an anonymous original
// without RewrapPolicy.SignAnonymous.
var ErrAnonymousOriginal = errors.New("the original is anonymous: signing the new envelope would vouch under your key for content nobody authenticated")

// RewrappedError is the refusal of an original rewrapped before; it
// matches state.ErrReplay.
type RewrappedError struct {
	Original *envelope.SenderInfo
	Sender   string // trusted name, or the key identifier in hex
	At       time.Time
}

func (e *RewrappedError) Error() string {
	return fmt.Sprintf("original already rewrapped: serial %d from %s was rewrapped at %s", e.Original.Serial, e.Sender, e.At.UTC().Format(time.RFC3339))
}

func (e *RewrappedError) Is(target error) bool { return target == state.ErrReplay }

var errNoRewrapRecord = errors.New("no state to record the rewrapped original in")

// Rewrap rewraps the envelope in src for other recipients (see
// envelope.Rewrap), opening the original as this Receiver opens — the
// same identities, trusted senders and anonymous rule — under pol. A
// non-nil opts.NewSender means the new envelope is signed. The
// original's freshness is checked before anything is written (and before
// opts.NewSender is called, so a serial it reserves is not burnt by a
// refusal there), an anonymous original is refused there if the new
// envelope is to be signed without pol.SignAnonymous;
// once the original verified whole, a signing rewrap records a signed
// original in the Store, and refuses it if it was recorded before
// (unless pol.Again). The new envelope goes to dst, committed only after all that, and aborted
// otherwise. opts.Open is set by Rewrap.
func (r *Receiver) Rewrap(dst Output, src io.Reader, opts envelope.RewrapOptions, pol RewrapPolicy) (*envelope.Rewrapped, error) {
	src, isCMS, err := sniff(src)
	if err == nil && isCMS {
		err = errRewrapCMS
	}
	if err != nil {
		dst.Abort()
		return nil, err
	}
	opts.Open = r.openOptions()
	newSender := opts.NewSender
	opts.NewSender = func(orig *envelope.Opened) (*envelope.Sender, error) {
		if err := r.checkOriginal(orig, pol); err != nil {
			return nil, err
		}
		if newSender == nil {
			return nil, nil
		}
		if orig.Sender == nil && !pol.SignAnonymous {
			return nil, ErrAnonymousOriginal
		}
		return newSender(orig)
	}
	res, err := envelope.Rewrap(dst, src, r.cfg.Identities, &opts)
	if err == nil && newSender != nil {
		err = r.recordRewrap(res.Sender, pol.Again)
	}
	if err == nil {
		err = dst.Commit()
	}
	if err != nil {
		dst.Abort()
		return nil, err
	}
	return res, nil
}

// checkOriginal applies the freshness rule to a signed original: never
// an impossible timestamp nor one beyond MaxSkew in the future, and
// older than pol.MaxAge only when that is set.
func (r *Receiver) checkOriginal(orig *envelope.Opened, pol RewrapPolicy) error {
	if orig.Sender == nil {
		return nil
	}
	maxAge := pol.MaxAge
	if maxAge == 0 {
		maxAge = 1<<63 - 1
	}
	return state.CheckFreshness(orig.Sender.Time, r.cfg.Now(), maxAge, r.cfg.MaxSkew)
}

// recordRewrap records a verified signed original in the Store, and
// refuses one recorded before unless again.
func (r *Receiver) recordRewrap(orig *envelope.SenderInfo, again bool) error {
	if orig == nil {
		return nil // anonymous: nothing names it
	}
	if r.cfg.Store == nil {
		return errNoRewrapRecord
	}
	rec, first, err := r.cfg.Store.RecordRewrap(context.Background(), orig.KeyID, orig.StreamID, orig.Serial, r.cfg.Now())
	if err != nil {
		return err
	}
	if !first && !again {
		return &RewrappedError{Original: orig, Sender: r.senderName(orig.KeyID), At: rec.At}
	}
	return nil
}
