// Package receive is tokenseal's policy for accepting envelopes: what
// the recipient's side does between reading an envelope and releasing its
// plaintext.
//
// # The order of things
//
// An envelope is verified whole first: its header MAC, every payload
// chunk and, for a signed envelope, the sender's signature by a trusted
// key. Then its timestamp is checked against the freshness limits, and
// its (sender, stream, serial) is recorded in the replay ledger, which
// refuses a serial it has seen. Only then is the plaintext released: an
// [Output] is committed, or a stream is written. A refusal at any step
// changes nothing in the ledger, so a forgery never burns the serial it
// claims.
//
// Anonymous envelopes carry no serial, so no replay protection: they are
// refused unless [Config.AllowAnonymous]. To a stream, an anonymous
// envelope is released chunk by chunk as each authenticates.
//
// [Receiver.Rewrap] opens an original the same way for key rotation, and
// applies [RewrapPolicy]: a signing rewrap takes each signed original
// once, never an anonymous one unless told, and never one dated in the
// future.
//
// # Reading again
//
// Replay protection is for messages arriving at a receiver. A recipient
// rereading an archive sets [Config.Reopen]: an envelope the ledger
// accepted before opens again if it is that very envelope, byte for byte
// (the ledger keeps a digest of each, [state.EnvelopeDigest]); any other
// envelope with its serial stays a replay. A plaintext that could not be
// released after the ledger accepted its envelope (standard output
// closed early) is an [UnreleasedError]: that envelope counts as
// accepted, and Reopen opens it again.
//
// # Who is asked
//
// An envelope from a sender no one trusts that is not addressed to any
// of the identities either is refused as not addressed here
// (envelope.NoIdentityMatchError), where the identities can tell
// ([Holder]): that is what the user must hear first.
//
// # CMS
//
// CMS messages (package envelope/cms: what `openssl cms` and S/MIME
// clients write) are one more kind of input, told from envelopes by their
// first bytes, under the same order and the same trusted senders and
// ledger: see [CMS]. They are never released before their tag (and
// signature) verified, even to a stream, since AES-GCM's tag comes after
// the whole content.
//
// # Storage
//
// Trusted senders, the ledger and the record of rewrapped originals sit
// behind [Store], which both stores of package state satisfy; a Receiver
// never opens files or names paths of its own, except its unnamed spool
// files in $TMPDIR.
package receive

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/internal/format"
	"github.com/tokenseal/tokenseal/envelope/state"
)

// Store is where a Receiver finds trusted senders, records accepted
// envelopes and the originals it rewrapped. Every state.Store (SQLite or
// PostgreSQL) satisfies it. Its methods may be called from several
// goroutines at once.
type Store interface {
	Senders
	Ledger
	Rewraps
}

// Senders finds trusted senders.
type Senders interface {
	// LookupTrusted returns the trusted sender whose key identifier is
	// id, or an error wrapping state.ErrNotFound.
	LookupTrusted(ctx context.Context, id [32]byte) (*state.Trusted, error)
}

// Ledger is the replay ledger.
type Ledger interface {
	// AcceptBatch records the items' serials in one transaction, in
	// order, within an anti-replay window of the given width (a serial
	// at or below the highest accepted minus the width is refused, and so
	// is one pruned by a narrower window before). It returns one error
	// per item: nil when recorded, an error wrapping state.ErrReplay when
	// refused (the item changes nothing), or for every item the error
	// that failed the transaction.
	AcceptBatch(ctx context.Context, items []state.AcceptItem, window uint64, now time.Time) []error
	// Accepted returns the ledger's record of an accepted envelope, or
	// an error wrapping state.ErrNotFound.
	Accepted(ctx context.Context, keyID [32]byte, stream, serial uint64) (*state.Acceptance, error)
}

// Rewraps records the originals a Receiver rewrapped.
type Rewraps interface {
	// RecordRewrap records that the envelope (keyID, stream, serial) was
	// rewrapped, if it was not recorded before, and returns the record
	// and first true when this call made it.
	RecordRewrap(ctx context.Context, keyID [32]byte, stream, serial uint64, now time.Time) (*state.Rewrap, bool, error)
}

var _ Store = state.Store(nil)

// Config says how a Receiver decides.
type Config struct {
	// Identities unwrap file keys: a token's keys, or software ones.
	Identities []envelope.Identity
	// Store holds the trusted senders and the replay ledger. Without
	// one, only the keys given to Trust are trusted and no signed
	// envelope can be accepted.
	Store Store
	// AllowAnonymous accepts envelopes without a sender signature; they
	// carry no replay protection.
	AllowAnonymous bool
	// MaxAge and MaxSkew bound a signed envelope's timestamp: older than
	// MaxAge, or more than MaxSkew in the future, is refused.
	MaxAge, MaxSkew time.Duration
	// Window is the width of the anti-replay window in serials; zero
	// means state.DefaultWindow.
	Window uint64
	// Now is the clock freshness is judged by; nil means time.Now.
	Now func() time.Time
	// Watch, when set, is told about the reading (for a progress bar).
	Watch Watcher
	// Log, when set, gets a debug record for each verified envelope.
	Log *slog.Logger
	// Own, when set, finds the recipient's own signing keys (those on
	// its token): trusted as senders without an entry in the Store, so
	// that what the user sealed opens for the user. The Store is asked
	// first.
	Own Senders
	// Reopen opens again a signed envelope the ledger accepted before,
	// if it is that very envelope, byte for byte (the digest recorded at
	// its first acceptance, state.EnvelopeDigest): for a recipient
	// rereading an archive. Such an envelope is neither checked for
	// freshness nor recorded again; another envelope with its serial
	// stays a replay; one the ledger never accepted is opened as the
	// first time.
	Reopen bool
	// Reopened, when set, is told about each envelope Reopen opened
	// again: its name, its sender's name and the ledger's record of its
	// first acceptance.
	Reopened func(name, sender string, first *state.Acceptance)
	// CMS says how CMS messages among the inputs are opened (cms.go).
	CMS CMS
}

// A Watcher follows a Receiver's reading. Its methods may be called from
// several goroutines at once.
type Watcher interface {
	// Reader wraps a ciphertext source; what is read through it is read
	// once.
	Reader(io.Reader) io.Reader
	// Started is called when an envelope's header has been read and
	// unwrapped (or failed to be), after any PIN prompt.
	Started()
	// Spooled is called when a signed envelope opened to a stream is to
	// be read a second time, from its spool.
	Spooled()
}

// A Receiver opens envelopes under one Config. Its methods may be called
// from several goroutines at once.
type Receiver struct {
	cfg Config

	mu      sync.Mutex
	extra   map[envelope.KeyID]crypto.PublicKey // Trust's keys
	trusted map[envelope.KeyID]crypto.PublicKey // found in the Store
	names   map[envelope.KeyID]string
}

// New returns a Receiver deciding by cfg.
func New(cfg Config) *Receiver {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Window == 0 {
		cfg.Window = state.DefaultWindow
	}
	if cfg.Watch == nil {
		cfg.Watch = noWatch{}
	}
	return &Receiver{
		cfg:     cfg,
		extra:   map[envelope.KeyID]crypto.PublicKey{},
		trusted: map[envelope.KeyID]crypto.PublicKey{},
		names:   map[envelope.KeyID]string{},
	}
}

// Trust trusts pub as a sender too, for this Receiver only, before the
// Store's trusted senders; name stands for it in messages.
func (r *Receiver) Trust(name string, pub crypto.PublicKey) error {
	id, err := envelope.KeyIDOf(pub)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.extra[id], r.names[id] = pub, name
	return nil
}

// openOptions is what envelope.Open checks for this Receiver: who is
// trusted, and whether anonymous envelopes are.
func (r *Receiver) openOptions() *envelope.OpenOptions {
	return &envelope.OpenOptions{RefuseAnonymous: !r.cfg.AllowAnonymous, Senders: r.sender}
}

// sender resolves a signing key: Trust's keys first, then the Store.
func (r *Receiver) sender(id envelope.KeyID) (crypto.PublicKey, error) {
	r.mu.Lock()
	pub, ok := r.extra[id]
	if !ok {
		pub, ok = r.trusted[id]
	}
	r.mu.Unlock()
	if ok {
		return pub, nil
	}
	if r.cfg.Store == nil {
		return nil, envelope.ErrUnknownSender
	}
	t, err := r.cfg.Store.LookupTrusted(context.Background(), id)
	if errors.Is(err, state.ErrNotFound) && r.cfg.Own != nil {
		t, err = r.cfg.Own.LookupTrusted(context.Background(), id)
	}
	if errors.Is(err, state.ErrNotFound) {
		return nil, envelope.ErrUnknownSender
	}
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.trusted[id], r.names[id] = t.Public, t.Name
	r.mu.Unlock()
	return t.Public, nil
}

// senderName is a sender's name for messages: its trusted name, or its
// key identifier.
func (r *Receiver) senderName(id envelope.KeyID) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := r.names[id]; n != "" {
		return n
	}
	return id.String()
}

// signed is a signed envelope verified whole, waiting for the ledger.
type signed struct {
	name   string
	sender *envelope.SenderInfo
	digest [32]byte // state.EnvelopeDigest
}

// signedOf is the verified signed envelope rd read to io.EOF.
func signedOf(name string, rd *envelope.Reader) *signed {
	d, sig, _ := rd.Signed()
	return &signed{name: name, sender: rd.Sender, digest: state.EnvelopeDigest(d, sig)}
}

// accept applies the freshness rule and records verified signed
// envelopes in one ledger transaction, in order, returning an error per
// envelope: a duplicate within the batch is refused as a replay of the
// earlier one. A refusal changes nothing. With Reopen, an envelope the
// ledger accepted before is looked up first.
func (r *Receiver) accept(envs []*signed) []error {
	errs := make([]error, len(envs))
	if r.cfg.Store == nil {
		for i := range errs {
			errs[i] = errNoLedger
		}
		return errs
	}
	now := r.cfg.Now()
	var items []state.AcceptItem
	var idx []int
	for i, e := range envs {
		s := e.sender
		if r.cfg.Reopen {
			if again, err := r.reopen(e); again {
				errs[i] = err
				continue
			}
		}
		if err := state.CheckFreshness(s.Time, now, r.cfg.MaxAge, r.cfg.MaxSkew); err != nil {
			errs[i] = err
			continue
		}
		items = append(items, state.AcceptItem{KeyID: s.KeyID, Stream: s.StreamID, Serial: s.Serial, Name: r.senderName(s.KeyID), Digest: e.digest})
		idx = append(idx, i)
	}
	if len(items) == 0 {
		return errs
	}
	res := r.cfg.Store.AcceptBatch(context.Background(), items, r.cfg.Window, now)
	for k, i := range idx {
		errs[i] = r.acceptedBefore(envs[i], res[k])
	}
	return errs
}

// reopen looks e up in the ledger for Reopen: again is false when the
// ledger never accepted its serial (then it is opened as the first
// time); otherwise err is nil for the very envelope accepted before
// (Reopened is told), a replay refusal for another one.
func (r *Receiver) reopen(e *signed) (again bool, err error) {
	s := e.sender
	a, err := r.cfg.Store.Accepted(context.Background(), s.KeyID, s.StreamID, s.Serial)
	switch {
	case errors.Is(err, state.ErrNotFound):
		return false, nil
	case err != nil:
		return true, err
	case !a.SameEnvelope(e.digest):
		return true, &NotSameError{Serial: s.Serial, Sender: r.senderName(s.KeyID), First: a}
	}
	if r.cfg.Reopened != nil {
		r.cfg.Reopened(e.name, r.senderName(s.KeyID), a)
	}
	return true, nil
}

// acceptedBefore marks a replay refusal of the very envelope the ledger
// accepted before as such (an *AcceptedBeforeError), so that the user
// can be told about Reopen; other errors are returned as they are.
func (r *Receiver) acceptedBefore(e *signed, err error) error {
	var re *state.ReplayError
	if !errors.As(err, &re) || re.TooOld || re.Invalid {
		return err
	}
	s := e.sender
	a, aerr := r.cfg.Store.Accepted(context.Background(), s.KeyID, s.StreamID, s.Serial)
	if aerr != nil || !a.SameEnvelope(e.digest) {
		return err
	}
	return &AcceptedBeforeError{Err: err, First: a}
}

// AcceptedBeforeError is a replay refusal of the very envelope the
// ledger accepted before, byte for byte: Config.Reopen would open it
// again. It wraps the ledger's refusal (state.ErrReplay).
type AcceptedBeforeError struct {
	Err   error
	First *state.Acceptance
}

func (e *AcceptedBeforeError) Error() string { return e.Err.Error() }
func (e *AcceptedBeforeError) Unwrap() error { return e.Err }

// NotSameError is Reopen's refusal of an envelope whose serial the
// ledger accepted for another envelope: a replay (state.ErrReplay).
type NotSameError struct {
	Serial uint64
	Sender string
	First  *state.Acceptance
}

func (e *NotSameError) Error() string {
	at := e.First.At.UTC().Format(time.RFC3339)
	if e.First.Digest == ([32]byte{}) {
		return fmt.Sprintf("replayed envelope: serial %d from %s was accepted at %s with no digest kept (accepted by a tokenseal that kept none): it cannot be told apart from another, so it is not opened again", e.Serial, e.Sender, at)
	}
	return fmt.Sprintf("replayed envelope: serial %d from %s was accepted at %s for another envelope; only that same envelope opens again", e.Serial, e.Sender, at)
}

func (e *NotSameError) Is(target error) bool { return target == state.ErrReplay }

// UnreleasedError is a signed envelope the ledger accepted whose
// plaintext could not then be released (a stream closed early, an
// output that could not be moved into place). It counts as accepted:
// Config.Reopen opens it again.
type UnreleasedError struct {
	Err    error
	Serial uint64
	Sender string
}

func (e *UnreleasedError) Error() string {
	return fmt.Sprintf("%v (the envelope counts as accepted: serial %d from %s)", e.Err, e.Serial, e.Sender)
}

func (e *UnreleasedError) Unwrap() error { return e.Err }

// unreleased wraps the failure to release an accepted envelope.
func (r *Receiver) unreleased(s *envelope.SenderInfo, err error) error {
	if err == nil || s == nil {
		return err
	}
	return &UnreleasedError{Err: err, Serial: s.Serial, Sender: r.senderName(s.KeyID)}
}

var errNoLedger = errors.New("no replay ledger to record a signed envelope in")

// logOpened records what was opened, once it verified: the stanza used,
// the sender's stamps, and any previous sender as the claim of the
// envelope's signer (FORMAT.md, section 2.4).
func (r *Receiver) logOpened(name string, o *envelope.Opened) {
	if r.cfg.Log == nil {
		return
	}
	attrs := []any{"input", name, "key_id", o.KeyID.String()}
	if s := o.Sender; s != nil {
		attrs = append(attrs, "sender", s.KeyID.String(), "stream", s.StreamID, "serial", s.Serial,
			"timestamp", s.Time.UTC().Format(time.RFC3339))
		if p := o.PreviousSender; p != nil {
			attrs = append(attrs, "previous_sender", p.KeyID.String(), "previous_stream", p.StreamID, "previous_serial", p.Serial,
				"previous_timestamp", p.Time.UTC().Format(time.RFC3339), "previous_sender_claimed_by", r.senderName(s.KeyID))
		}
	}
	r.cfg.Log.Debug("envelope verified", attrs...)
}

// Holder is an Identity that can tell, without unwrapping anything,
// whether it holds the key a stanza names (token/keyring's Keyring can).
type Holder interface {
	Holds(id envelope.KeyID) (bool, error)
}

// notForUs turns the refusal of an untrusted sender into a
// NoIdentityMatchError when the envelope is addressed to none of the
// identities, since that is what the user must hear first (it was sent
// to someone else). header reads the envelope's header again. Where an
// identity cannot tell (not a Holder, or it fails), err stands.
func (r *Receiver) notForUs(err error, header func() *format.Header) error {
	var use *envelope.UnknownSenderError
	if !errors.As(err, &use) {
		return err
	}
	h := header()
	if h == nil {
		return err
	}
	ids := make([]envelope.KeyID, 0, len(h.Stanzas))
	for _, s := range h.Stanzas {
		ids = append(ids, envelope.KeyID(s.KeyID))
		for _, idn := range r.cfg.Identities {
			ho, ok := idn.(Holder)
			if !ok {
				return err
			}
			if held, herr := ho.Holds(envelope.KeyID(s.KeyID)); herr != nil || held {
				return err
			}
		}
	}
	return &envelope.NoIdentityMatchError{KeyIDs: ids}
}

var errRewrapCMS = errors.New("input is a CMS message; rewrap rewraps tokenseal envelopes only (open it and seal it again)")

type noWatch struct{}

func (noWatch) Reader(r io.Reader) io.Reader { return r }
func (noWatch) Started()                     {}
func (noWatch) Spooled()                     {}
