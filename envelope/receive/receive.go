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
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
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

// accept applies the freshness rule and records the serials of verified
// signed envelopes in one ledger transaction, in order, returning an
// error per envelope: a duplicate within the batch is refused as a
// replay of the earlier one. A refusal changes nothing.
func (r *Receiver) accept(senders []*envelope.SenderInfo) []error {
	errs := make([]error, len(senders))
	now := r.cfg.Now()
	var items []state.AcceptItem
	var idx []int
	for i, s := range senders {
		if err := state.CheckFreshness(s.Time, now, r.cfg.MaxAge, r.cfg.MaxSkew); err != nil {
			errs[i] = err
			continue
		}
		items = append(items, state.AcceptItem{KeyID: s.KeyID, Stream: s.StreamID, Serial: s.Serial, Name: r.senderName(s.KeyID)})
		idx = append(idx, i)
	}
	if len(items) == 0 {
		return errs
	}
	if r.cfg.Store == nil {
		for _, i := range idx {
			errs[i] = errNoLedger
		}
		return errs
	}
	res := r.cfg.Store.AcceptBatch(context.Background(), items, r.cfg.Window, now)
	for k, i := range idx {
		errs[i] = res[k]
	}
	return errs
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

var errRewrapCMS = errors.New("input is a CMS message; rewrap rewraps tokenseal envelopes only (open it and seal it again)")

type noWatch struct{}

func (noWatch) Reader(r io.Reader) io.Reader { return r }
func (noWatch) Started()                     {}
func (noWatch) Spooled()                     {}
