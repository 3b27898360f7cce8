package receive_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/receive"
	"github.com/tokenseal/tokenseal/envelope/state"
)

// rewrap rewraps env to carol under pol, signed by rot when not nil (the
// serial from *serial, counted up on each call of NewSender), and returns
// the new envelope.
func (r *rig) rewrap(rcv *receive.Receiver, env []byte, rot *envelope.Sender, serial *uint64, pol receive.RewrapPolicy) ([]byte, error) {
	r.t.Helper()
	carol, err := envelope.NewRecipient(p256(r.t).Public(), 0)
	if err != nil {
		r.t.Fatal(err)
	}
	opts := envelope.RewrapOptions{Add: []envelope.Recipient{carol}}
	if rot != nil {
		opts.NewSender = func(*envelope.Opened) (*envelope.Sender, error) {
			*serial++
			s := *rot
			s.Serial = *serial
			return &s, nil
		}
	}
	out := &memOutput{}
	_, err = rcv.Rewrap(out, bytes.NewReader(env), opts, pol)
	if err != nil {
		if out.done && !out.aborted {
			r.t.Fatalf("refused (%v) but committed", err)
		}
		return nil, err
	}
	return out.buf.Bytes(), nil
}

// A signed original is rewrapped once per store: fed again, it is
// refused as a replay (nothing committed) unless the policy says Again.
// Before the fix every rewrap of the same original succeeded, each with
// a fresh serial.
func TestRewrapOnce(t *testing.T) {
	r := newRig(t)
	alice, rot := p256(t), p256(t)
	r.trust("alice", alice.Public())
	orig := r.seal([]byte("rotate me"), &envelope.Sender{Signer: alice, StreamID: randomStream(), Serial: 7, Time: time.Now()})
	rcv := r.receiver()
	var serial uint64
	sender := &envelope.Sender{Signer: rot, StreamID: 1, Time: time.Now()}
	if _, err := r.rewrap(rcv, orig, sender, &serial, receive.RewrapPolicy{}); err != nil {
		t.Fatal(err)
	}
	_, err := r.rewrap(rcv, orig, sender, &serial, receive.RewrapPolicy{})
	var re *receive.RewrappedError
	if !errors.As(err, &re) || !errors.Is(err, state.ErrReplay) || re.Sender != "alice" || re.Original.Serial != 7 {
		t.Fatalf("second rewrap: %v", err)
	}
	if _, err := r.rewrap(rcv, orig, sender, &serial, receive.RewrapPolicy{Again: true}); err != nil {
		t.Fatalf("--again: %v", err)
	}
	// Rewrapping records nothing in the ledger: the original still opens.
	r.openOK(rcv, orig, []byte("rotate me"))
	// A forged original (bad signature) records nothing.
	forged := r.seal([]byte("forged"), &envelope.Sender{Signer: alice, StreamID: 5, Serial: 8, Time: time.Now()})
	forged[len(forged)-1] ^= 1
	if _, err := r.rewrap(rcv, forged, sender, &serial, receive.RewrapPolicy{}); !errors.Is(err, envelope.ErrSignature) {
		t.Fatalf("forged: %v", err)
	}
	good := r.seal([]byte("real"), &envelope.Sender{Signer: alice, StreamID: 5, Serial: 8, Time: time.Now()})
	if _, err := r.rewrap(rcv, good, sender, &serial, receive.RewrapPolicy{}); err != nil {
		t.Fatalf("the real serial 8 after a forgery of it: %v", err)
	}
}

// An anonymous original is never signed without SignAnonymous, and the
// refusal comes before NewSender is asked (no serial reserved). Before
// the fix a signing rewrap signed it.
func TestRewrapAnonymousOriginal(t *testing.T) {
	r := newRig(t)
	rcv := r.receiver(func(c *receive.Config) { c.AllowAnonymous = true })
	orig := r.seal([]byte("anonymous"), nil)
	var serial uint64
	sender := &envelope.Sender{Signer: p256(t), StreamID: 1, Time: time.Now()}
	if _, err := r.rewrap(rcv, orig, sender, &serial, receive.RewrapPolicy{}); !errors.Is(err, receive.ErrAnonymousOriginal) || serial != 0 {
		t.Fatalf("err = %v, %d serials reserved", err, serial)
	}
	env, err := r.rewrap(rcv, orig, sender, &serial, receive.RewrapPolicy{SignAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	if info, err := envelope.Inspect(bytes.NewReader(env)); err != nil || info.Sender == nil || info.PreviousSender != nil {
		t.Fatalf("vouched: %+v, %v", info, err)
	}
	// Unsigned to unsigned needs no flag, and is not recorded.
	for range 2 {
		if _, err := r.rewrap(rcv, orig, nil, nil, receive.RewrapPolicy{}); err != nil {
			t.Fatal(err)
		}
	}
}

// The original's timestamp: an impossible one and one beyond MaxSkew in
// the future are refused before NewSender; an old one only with MaxAge.
func TestRewrapFreshness(t *testing.T) {
	r := newRig(t)
	alice := p256(t)
	r.trust("alice", alice.Public())
	rcv := r.receiver()
	sender := &envelope.Sender{Signer: p256(t), StreamID: 1, Time: time.Now()}
	for _, c := range []struct {
		name string
		at   time.Time
		pol  receive.RewrapPolicy
		want error // nil: rewrapped
	}{
		{"a year old", time.Now().AddDate(-1, 0, 0), receive.RewrapPolicy{}, nil},
		{"a year old, max age 30 days", time.Now().AddDate(-1, 0, 0), receive.RewrapPolicy{MaxAge: 30 * 24 * time.Hour}, state.ErrReplay},
		{"an hour ahead", time.Now().Add(time.Hour), receive.RewrapPolicy{}, state.ErrReplay},
		// A malformed header since FORMAT.md 2.5 (step 1).
		{"year 10000", time.UnixMilli(state.MaxTimestamp), receive.RewrapPolicy{}, envelope.ErrRejected},
	} {
		orig := r.seal([]byte("x"), &envelope.Sender{Signer: alice, StreamID: randomStream(), Serial: 1, Time: c.at})
		var serial uint64
		_, err := r.rewrap(rcv, orig, sender, &serial, c.pol)
		if (c.want == nil) != (err == nil) || c.want != nil && (!errors.Is(err, c.want) || serial != 0) {
			t.Errorf("%s: err = %v, %d serials reserved", c.name, err, serial)
		}
	}
}
