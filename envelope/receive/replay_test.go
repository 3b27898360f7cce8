package receive_test

import (
	"crypto"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/receive"
	"github.com/tokenseal/tokenseal/envelope/state"
	ref "github.com/tokenseal/tokenseal/internal/reference"
)

const rfc3339RE = `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`

// A P-256 ECDSA and an RSA-PSS sender: each envelope opens once; the
// same envelope again, to a file, to a stream or re-armored, is refused
// as a replay with the ledger's message, and nothing is released.
func TestSignedReplay(t *testing.T) {
	r := newRig(t)
	rcv := r.receiver()
	plain := []byte("attack at dawn\n")
	for _, c := range []struct {
		name   string
		signer crypto.Signer
	}{{"alice-p256", p256(t)}, {"alice-rsa", rsa2048(t)}} {
		r.trust(c.name, c.signer.Public())
		stream := randomStream()
		for serial := uint64(1); serial <= 2; serial++ {
			env := r.seal(plain, &envelope.Sender{Signer: c.signer, StreamID: stream, Serial: serial, Time: time.Now()})
			r.openOK(rcv, env, plain)
			want := fmt.Sprintf(`^replayed envelope: serial %d from %s was accepted at %s$`, serial, c.name, rfc3339RE)
			r.refused(rcv, env, state.ErrReplay, want)
			r.refused(rcv, ref.Armor(env), state.ErrReplay, want)
		}
	}
	l, err := r.st.Ledger(t.Context())
	if err != nil || len(l) != 2 {
		t.Fatalf("ledger: %v %v", ledgerString(l), err)
	}
	for _, e := range l {
		if e.Highest != 2 || e.Occupancy != 2 {
			t.Errorf("ledger entry %s: want highest 2, occupancy 2", ledgerString(l))
		}
	}
}

// Ten envelopes opened in a random order are each accepted once and then
// refused; with a window of 4 a serial at the window's lower edge is
// refused and one just inside it accepted once; and narrowing the window
// in one call must not let a later call with the default window accept
// again an envelope that was accepted before.
func TestOutOfOrderAndWindow(t *testing.T) {
	r := newRig(t)
	alice := p256(t)
	r.trust("alice", alice.Public())
	stream := randomStream()
	const n = 20
	envs := make([][]byte, n+1) // by serial
	plains := make([][]byte, n+1)
	for s := 1; s <= n; s++ {
		plains[s] = []byte(fmt.Sprintf("message %d\n", s))
		envs[s] = r.seal(plains[s], &envelope.Sender{Signer: alice, StreamID: stream, Serial: uint64(s), Time: time.Now()})
	}
	rng := testRand(t)
	rcv, narrow := r.receiver(), r.receiver(window(4))

	order := rng.Perm(10)
	t.Logf("first ten opened in the order %v (serial-1)", order)
	for _, i := range order {
		r.openOK(rcv, envs[i+1], plains[i+1])
	}
	r.ledgerIs("alice", 10, 10)
	for _, i := range rng.Perm(10) {
		r.refused(rcv, envs[i+1], state.ErrReplay, fmt.Sprintf(`^replayed envelope: serial %d from alice was accepted at `, i+1))
	}

	// Window 4 and highest 20: the window is 17..20.
	r.openOK(narrow, envs[20], plains[20])
	r.refused(narrow, envs[16], state.ErrReplay, `^replayed or stale envelope: serial 16 from alice is below the replay window \(highest accepted 20\)$`)
	r.openOK(narrow, envs[17], plains[17])
	r.refused(narrow, envs[17], state.ErrReplay, `^replayed envelope: serial 17 from alice was accepted at `)
	r.ledgerIs("alice", 20, 2)

	// Serials 1..10 were accepted; the narrow window pruned their records.
	// A later open with the default (wider) window must still refuse them.
	for s := 1; s <= 10; s++ {
		r.refused(rcv, envs[s], state.ErrReplay, fmt.Sprintf(`serial %d from alice`, s))
	}
	// An envelope within the default window, never accepted, still opens.
	r.openOK(rcv, envs[18], plains[18])
}

// Envelopes stamped too old or too far in the future are refused as
// stale (a replay refusal) with the reason; a refusal does not burn the
// serial: the same envelope opens under a wider limit. Freshness is
// checked before the ledger.
func TestFreshness(t *testing.T) {
	r := newRig(t)
	soft := p256(t)
	r.trust("soft", soft.Public())
	stream := randomStream()
	now := time.Now()
	mk := func(serial uint64, ts time.Time) ([]byte, []byte) {
		plain := []byte(fmt.Sprintf("serial %d stamped %s\n", serial, ts.Format(time.RFC3339)))
		return r.seal(plain, &envelope.Sender{Signer: soft, StreamID: stream, Serial: serial, Time: ts}), plain
	}
	old, oldPlain := mk(1, now.Add(-8*24*time.Hour))
	future, futurePlain := mk(2, now.Add(10*time.Minute))
	hours, hoursPlain := mk(3, now.Add(-2*time.Hour))
	fresh, freshPlain := mk(4, now)
	limits := func(age, skew time.Duration) *receive.Receiver {
		return r.receiver(func(c *receive.Config) { c.MaxAge, c.MaxSkew = age, skew })
	}
	def := limits(7*24*time.Hour, 5*time.Minute)

	r.refused(def, old, state.ErrReplay, `^stale envelope: timestamp `+rfc3339RE+` is older than the maximum age 168h0m0s$`)
	r.refused(def, future, state.ErrReplay, `^stale envelope: timestamp `+rfc3339RE+` is \S+ in the future \(max skew 5m0s\)$`)
	r.refused(limits(time.Hour, 5*time.Minute), hours, state.ErrReplay, `^stale envelope: timestamp `+rfc3339RE+` is older than the maximum age 1h0m0s$`)
	r.refused(limits(7*24*time.Hour, time.Minute), future, state.ErrReplay, `in the future \(max skew 1m0s\)`)
	r.ledgerIs("", 0, 0)

	// Not burnt: each opens under limits that admit it, once.
	r.openOK(limits(720*time.Hour, 5*time.Minute), old, oldPlain)
	r.openOK(limits(7*24*time.Hour, time.Hour), future, futurePlain)
	r.openOK(def, hours, hoursPlain)
	r.openOK(limits(time.Hour, time.Minute), fresh, freshPlain)
	r.ledgerIs("soft", 4, 4)
	// Freshness is checked first, then the ledger.
	r.refused(def, old, state.ErrReplay, `^stale envelope`)
	r.refused(limits(720*time.Hour, 5*time.Minute), old, state.ErrReplay, `^replayed envelope: serial 1 from soft`)
}

func testRand(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TOKENSEAL_TEST_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("random seed %d (set TOKENSEAL_TEST_SEED to repeat)", seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}
