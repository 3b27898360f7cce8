package receive_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/receive"
	"github.com/tokenseal/tokenseal/envelope/state"
)

// Opening to a stream, anonymous (streamed) and signed (verified whole,
// then decrypted again from the spool), for an envelope of several
// chunks, binary and armored: the stream gets the plaintext, and the
// spool leaves nothing behind in $TMPDIR.
func TestStreamMultiChunk(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	r := newRig(t)
	alice := p256(t)
	r.trust("alice", alice.Public())
	plain := make([]byte, 5*65536+123)
	rand.Read(plain)
	rcv := r.receiver(func(c *receive.Config) { c.AllowAnonymous = true })
	for i, c := range []struct {
		signed, armor bool
	}{{false, false}, {true, false}, {true, true}} {
		var s *envelope.Sender
		if c.signed {
			s = &envelope.Sender{Signer: alice, StreamID: 7, Serial: uint64(i), Time: time.Now()}
		}
		got, err := openStream(rcv, seal(t, plain, s, c.armor, r.to))
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%+v: %d bytes, %v", c, len(got), err)
		}
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("left in TMPDIR: %v", left)
	}
}

// A signed envelope of up to 16 KiB of plaintext is verified and released
// from memory, without a spool file; one byte more goes through the spool,
// and so does a multi-chunk one. Tampered, each is refused with nothing
// out.
func TestStreamSmallInMemory(t *testing.T) {
	r := newRig(t)
	alice := p256(t)
	r.trust("alice", alice.Public())
	rcv := r.receiver()
	for i, n := range []int{0, 1, 16384, 16385, 65537} {
		plain := make([]byte, n)
		rand.Read(plain)
		env := seal(t, plain, &envelope.Sender{Signer: alice, StreamID: 9, Serial: uint64(2*i + 1), Time: time.Now()}, false, r.to)
		got, err := openStream(rcv, env)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%d bytes: got %d, %v", n, len(got), err)
		}
		env = seal(t, plain, &envelope.Sender{Signer: alice, StreamID: 9, Serial: uint64(2*i + 2), Time: time.Now()}, false, r.to)
		env[len(env)-70] ^= 1 // in the last chunk's tag
		if got, err := openStream(rcv, env); err == nil || len(got) != 0 {
			t.Fatalf("%d bytes, tampered: %d bytes out, %v", n, len(got), err)
		}
	}
}

// An anonymous envelope streams: the chunks before a tampered one are
// out before the error. A signed one is verified whole first: nothing is
// out, and the ledger is untouched.
func TestStreamReleases(t *testing.T) {
	r := newRig(t)
	alice := p256(t)
	r.trust("alice", alice.Public())
	plain := make([]byte, 3*65536)
	rcv := r.receiver(func(c *receive.Config) { c.AllowAnonymous = true })
	anon := r.seal(plain, nil)
	anon[len(anon)-20] ^= 1
	got, err := openStream(rcv, anon)
	if !errors.Is(err, envelope.ErrPayloadAuth) || len(got) != 2*65536 {
		t.Fatalf("anonymous, last chunk tampered: %d bytes out, %v", len(got), err)
	}
	signed := r.seal(plain, &envelope.Sender{Signer: alice, StreamID: 7, Serial: 1, Time: time.Now()})
	bad := bytes.Clone(signed)
	bad[len(bad)-100] ^= 1
	r.refused(rcv, bad, envelope.ErrRejected, `payload authentication failed`)
	r.ledgerIs("", 0, 0)
	if got, err := openStream(rcv, signed); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("genuine: %v", err)
	}
}

// A signed envelope to a stream is unwrapped once, though it is read
// twice: the second pass (after the ledger counted it) reuses the file
// key.
func TestStreamUnwrapsOnce(t *testing.T) {
	r := newRig(t)
	alice := p256(t)
	r.trust("alice", alice.Public())
	var calls atomic.Int32
	counted := countingIdentity{r.cfg.Identities[0], &calls}
	rcv := r.receiver(func(c *receive.Config) { c.Identities = []envelope.Identity{counted} })
	plain := []byte("once")
	env := r.seal(plain, &envelope.Sender{Signer: alice, StreamID: 7, Serial: 1, Time: time.Now()})
	if got, err := openStream(rcv, env); err != nil || !bytes.Equal(got, plain) {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d unwraps, want 1", n)
	}
}

type countingIdentity struct {
	envelope.Identity
	n *atomic.Int32
}

func (c countingIdentity) Unwrap(s []*envelope.Stanza) ([]byte, error) {
	c.n.Add(1)
	return c.Identity.Unwrap(s)
}

// A stream that fails (a full standard output) is an error. The signed
// envelope was recorded before its plaintext was written, so it is used
// up: docs/security.md, "Nothing unauthenticated is released".
func TestStreamFullOutput(t *testing.T) {
	r := newRig(t)
	alice := p256(t)
	r.trust("alice", alice.Public())
	env := r.seal(make([]byte, 3<<20), &envelope.Sender{Signer: alice, StreamID: 7, Serial: 1, Time: time.Now()})
	full := &memOutput{limit: 1 << 20, writeErr: syscall.ENOSPC}
	if err := r.receiver().Stream("in", bytes.NewReader(env), full); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("stream to a full output: %v", err)
	}
	r.ledgerIs("alice", 1, 1)
}

// Who is trusted: anonymous envelopes only when allowed; signed ones
// only from a trusted sender, from the Store or given to Trust (whose
// name the ledger's messages then use).
func TestSenders(t *testing.T) {
	r := newRig(t)
	plain := []byte("hello")
	anon := r.seal(plain, nil)
	r.refused(r.receiver(), anon, envelope.ErrUnsigned, `^envelope is not signed \(anonymous\)$`)
	r.openOK(r.receiver(func(c *receive.Config) { c.AllowAnonymous = true }), anon, plain)

	eve := p256(t)
	env := r.seal(plain, &envelope.Sender{Signer: eve, StreamID: 7, Serial: 1, Time: time.Now()})
	var unknown *envelope.UnknownSenderError
	for _, open := range []func(*receive.Receiver, []byte) ([]byte, error){openFile, openStream} {
		if _, err := open(r.receiver(), env); !errors.As(err, &unknown) {
			t.Fatalf("untrusted sender: %v", err)
		}
	}
	noStore := r.receiver(func(c *receive.Config) { c.Store = nil })
	if _, err := openFile(noStore, env); !errors.As(err, &unknown) {
		t.Fatalf("untrusted sender, no store: %v", err)
	}
	rcv := r.receiver()
	if err := rcv.Trust("eve.pem", eve.Public()); err != nil {
		t.Fatal(err)
	}
	r.openOK(rcv, env, plain)
	r.refused(rcv, env, state.ErrReplay, `^replayed envelope: serial 1 from eve.pem was accepted`)
	// Recorded under the key: the store does not know the name.
	if l, _ := r.st.Ledger(t.Context()); len(l) != 1 || l[0].Name != "" || l[0].Highest != 1 {
		t.Fatalf("ledger %s", ledgerString(l))
	}
}
