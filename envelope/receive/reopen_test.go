package receive_test

import (
	"bytes"
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/receive"
	"github.com/tokenseal/tokenseal/envelope/state"
	ref "github.com/tokenseal/tokenseal/internal/reference"
)

// reopened records what Config.Reopened was told.
type reopened struct {
	names []string
	first []*state.Acceptance
}

func (r *reopened) opt(c *receive.Config) {
	c.Reopen = true
	c.Reopened = func(name, sender string, first *state.Acceptance) {
		r.names = append(r.names, name+" from "+sender)
		r.first = append(r.first, first)
	}
}

// TestReopen: the ledger keeps a digest of what it accepted; with Reopen
// the very same envelope (binary or re-armored, to a file or a stream,
// however old) opens again and is reported with its first acceptance,
// recording nothing; another envelope with its serial stays a replay;
// one never accepted opens as the first time. Without Reopen, a replay
// of the same envelope says it is one (AcceptedBeforeError), a replay
// of another does not.
func TestReopen(t *testing.T) {
	r := newRig(t)
	alice := p256(t)
	r.trust("alice", alice.Public())
	plain := []byte("archive")
	sealed := time.Now().Add(-30 * 24 * time.Hour)
	env := r.seal(plain, &envelope.Sender{Signer: alice, StreamID: 5, Serial: 1, Time: time.Now()})
	old := r.receiver(func(c *receive.Config) { c.Now = func() time.Time { return sealed.Add(time.Minute) } })
	oldEnv := r.seal(plain, &envelope.Sender{Signer: alice, StreamID: 5, Serial: 2, Time: sealed})
	r.openOK(r.receiver(), env, plain)
	r.openOK(old, oldEnv, plain)
	r.ledgerIs("alice", 2, 2)

	var same *receive.AcceptedBeforeError
	if _, err := openFile(r.receiver(), env); !errors.As(err, &same) || !errors.Is(err, state.ErrReplay) || same.First.Serial != 1 {
		t.Fatalf("replay of the same envelope: %v", err)
	}
	forged := r.seal(plain, &envelope.Sender{Signer: alice, StreamID: 5, Serial: 1, Time: time.Now()})
	if _, err := openFile(r.receiver(), forged); !errors.Is(err, state.ErrReplay) || errors.As(err, &same) {
		t.Fatalf("replay of another envelope with serial 1: %v", err)
	}

	rep := &reopened{}
	rcv := r.receiver(rep.opt)
	for _, e := range [][]byte{env, ref.Armor(env), oldEnv} {
		r.openOK(rcv, e, plain)
		if got, err := openStream(rcv, e); err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("reopen to a stream: %v", err)
		}
	}
	if len(rep.names) != 6 || rep.names[0] != "in from alice" || rep.first[0].Serial != 1 || rep.first[4].Serial != 2 {
		t.Fatalf("Reopened told %v", rep.names)
	}
	r.refused(rcv, forged, state.ErrReplay, `^replayed envelope: serial 1 from alice was accepted at \S+ for another envelope; only that same envelope opens again$`)
	r.ledgerIs("alice", 2, 2)

	// Never accepted: opened as the first time (fresh, and recorded).
	third := r.seal(plain, &envelope.Sender{Signer: alice, StreamID: 5, Serial: 3, Time: time.Now()})
	r.openOK(rcv, third, plain)
	r.ledgerIs("alice", 3, 3)
	stale := r.seal(plain, &envelope.Sender{Signer: alice, StreamID: 5, Serial: 4, Time: sealed})
	r.refused(rcv, stale, state.ErrReplay, `^stale envelope`)
	if len(rep.names) != 6 {
		t.Fatalf("Reopened told about a first open: %v", rep.names)
	}
}

// TestUnreleased: a signed envelope whose plaintext cannot be released
// after the ledger accepted it (a stream that closed: EPIPE; an output
// that cannot be committed) is an UnreleasedError naming it, and Reopen
// opens it again.
func TestUnreleased(t *testing.T) {
	r := newRig(t)
	alice := p256(t)
	r.trust("alice", alice.Public())
	plain := make([]byte, 200000)
	env := r.seal(plain, &envelope.Sender{Signer: alice, StreamID: 5, Serial: 1, Time: time.Now()})
	var un *receive.UnreleasedError
	closed := &memOutput{limit: 100, writeErr: syscall.EPIPE}
	err := r.receiver().Stream("in", bytes.NewReader(env), closed)
	if !errors.As(err, &un) || !errors.Is(err, syscall.EPIPE) || un.Serial != 1 || un.Sender != "alice" {
		t.Fatalf("stream closed early: %v", err)
	}
	r.openOK(r.receiver((&reopened{}).opt), env, plain)

	env2 := r.seal(plain, &envelope.Sender{Signer: alice, StreamID: 5, Serial: 2, Time: time.Now()})
	outs := &outputs{fail: func(int) *memOutput { return &memOutput{} }}
	it := outs.item("in", env2)
	create := it.Create
	it.Create = func() (receive.Output, error) {
		o, err := create()
		return failCommit{o}, err
	}
	if errs := r.receiver().Batch([]receive.Item{it}); !errors.As(errs[0], &un) || !errors.Is(errs[0], syscall.EXDEV) {
		t.Fatalf("commit failed: %v", errs[0])
	}
	r.ledgerIs("alice", 2, 2)
}

type failCommit struct{ receive.Output }

func (failCommit) Commit() error { return syscall.EXDEV }

// ownKeys trusts one key as the user's own, as a token's signing key.
type ownKeys struct {
	id  [32]byte
	pub any
}

func (o ownKeys) LookupTrusted(_ context.Context, id [32]byte) (*state.Trusted, error) {
	if id != o.id {
		return nil, state.ErrNotFound
	}
	return &state.Trusted{Name: "token:me", KeyID: id, Public: o.pub}, nil
}

// TestOwnSenders: the recipient's own signing keys (Config.Own) are
// trusted senders without an entry in the Store.
func TestOwnSenders(t *testing.T) {
	r := newRig(t)
	me := p256(t)
	id, _ := envelope.KeyIDOf(me.Public())
	plain := []byte("note to self")
	env := r.seal(plain, &envelope.Sender{Signer: me, StreamID: 5, Serial: 1, Time: time.Now()})
	var unknown *envelope.UnknownSenderError
	if _, err := openFile(r.receiver(), env); !errors.As(err, &unknown) {
		t.Fatalf("without Own: %v", err)
	}
	own := r.receiver(func(c *receive.Config) { c.Own = ownKeys{id, me.Public()} })
	r.openOK(own, env, plain)
	r.refused(own, env, state.ErrReplay, `^replayed envelope: serial 1 from token:me was accepted`)
}

// holder is a software identity that tells which keys it holds.
type holder struct {
	envelope.Identity
	id envelope.KeyID
}

func (h holder) Holds(id envelope.KeyID) (bool, error) { return id == h.id, nil }

// TestNotAddressedFirst: an envelope from an untrusted sender that is
// not addressed to any key here says so first (NoIdentityMatchError),
// to a file or a stream; one addressed here stays an untrusted sender.
func TestNotAddressedFirst(t *testing.T) {
	r := newRig(t)
	bobID, _ := envelope.KeyIDOf(r.bob.Public())
	rcv := r.receiver(func(c *receive.Config) { c.Identities = []envelope.Identity{holder{c.Identities[0], bobID}} })
	eve, carol := p256(t), p256(t)
	toCarol, _ := envelope.NewRecipient(carol.Public(), 0)
	notOurs := seal(t, []byte("x"), &envelope.Sender{Signer: eve, StreamID: 5, Serial: 1, Time: time.Now()}, false, toCarol)
	ours := r.seal([]byte("x"), &envelope.Sender{Signer: eve, StreamID: 5, Serial: 2, Time: time.Now()})
	var nomatch *envelope.NoIdentityMatchError
	var unknown *envelope.UnknownSenderError
	for name, open := range map[string]func(*receive.Receiver, []byte) ([]byte, error){"file": openFile, "stream": openStream} {
		if _, err := open(rcv, notOurs); !errors.As(err, &nomatch) {
			t.Fatalf("%s: not addressed here, untrusted: %v", name, err)
		}
		if _, err := open(rcv, ref.Armor(notOurs)); !errors.As(err, &nomatch) {
			t.Fatalf("%s: armored: %v", name, err)
		}
		if _, err := open(rcv, ours); !errors.As(err, &unknown) {
			t.Fatalf("%s: addressed here, untrusted: %v", name, err)
		}
	}
}
