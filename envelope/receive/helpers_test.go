package receive_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/receive"
	"github.com/tokenseal/tokenseal/envelope/state"
	"github.com/tokenseal/tokenseal/envelope/state/sqlite"
)

// rig is a recipient with a software P-256 key ("bob") and a real SQLite
// state directory, and a Receiver over them.
type rig struct {
	t   *testing.T
	st  state.Store
	bob *ecdsa.PrivateKey
	to  envelope.Recipient
	cfg receive.Config
}

func newRig(t *testing.T) *rig {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "state")) // made 0700
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	bob := p256(t)
	to, err := envelope.NewRecipient(bob.Public(), 0)
	if err != nil {
		t.Fatal(err)
	}
	id, err := envelope.NewSoftwareIdentity(bob)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, st: st, bob: bob, to: to, cfg: receive.Config{
		Identities: []envelope.Identity{id},
		Store:      st,
		MaxAge:     7 * 24 * time.Hour,
		MaxSkew:    5 * time.Minute,
	}}
}

// receiver is a Receiver under the rig's config changed by opts.
func (r *rig) receiver(opts ...func(*receive.Config)) *receive.Receiver {
	cfg := r.cfg
	for _, o := range opts {
		o(&cfg)
	}
	return receive.New(cfg)
}

func window(w uint64) func(*receive.Config) { return func(c *receive.Config) { c.Window = w } }

func (r *rig) trust(name string, pub crypto.PublicKey) {
	r.t.Helper()
	if _, err := r.st.AddTrusted(context.Background(), name, pub); err != nil {
		r.t.Fatal(err)
	}
}

// seal seals plain to bob (and extra recipients), signed by s when not nil.
func (r *rig) seal(plain []byte, s *envelope.Sender, extra ...envelope.Recipient) []byte {
	r.t.Helper()
	return seal(r.t, plain, s, false, append([]envelope.Recipient{r.to}, extra...)...)
}

func seal(t *testing.T, plain []byte, s *envelope.Sender, armor bool, to ...envelope.Recipient) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := envelope.Seal(&buf, to, &envelope.SealOptions{Sender: s, Armor: armor})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// openFile opens env through Batch to one Output, as `open -o FILE`
// does, and returns what was committed.
func openFile(rcv *receive.Receiver, env []byte) ([]byte, error) {
	outs := &outputs{}
	errs := rcv.Batch([]receive.Item{outs.item("in", env)})
	return outs.committed(0), errs[0]
}

// openStream opens env to a stream, as `open` to stdout does.
func openStream(rcv *receive.Receiver, env []byte) ([]byte, error) {
	var out bytes.Buffer
	err := rcv.Stream("in", bytes.NewReader(env), &out)
	return out.Bytes(), err
}

// refused checks that env is refused both to a file and to a stream,
// with an error matching re (and wrapping want), and that nothing is
// released.
func (r *rig) refused(rcv *receive.Receiver, env []byte, want error, re string) {
	r.t.Helper()
	for _, how := range []struct {
		name string
		open func(*receive.Receiver, []byte) ([]byte, error)
	}{{"file", openFile}, {"stream", openStream}} {
		got, err := how.open(rcv, env)
		if err == nil || !errors.Is(err, want) || !regexp.MustCompile(re).MatchString(err.Error()) {
			r.t.Fatalf("%s: error %v; want one wrapping %v matching %q", how.name, err, want, re)
		}
		if want == envelope.ErrRejected && errors.Is(err, state.ErrReplay) {
			r.t.Fatalf("%s: %v is a replay refusal, not a rejection", how.name, err)
		}
		if len(got) != 0 {
			r.t.Fatalf("%s: refused but released %d bytes", how.name, len(got))
		}
	}
}

// openOK opens env to a file and checks the plaintext.
func (r *rig) openOK(rcv *receive.Receiver, env, want []byte) {
	r.t.Helper()
	got, err := openFile(rcv, env)
	if err != nil {
		r.t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		r.t.Fatalf("plaintext of %d bytes differs from the %d sealed", len(got), len(want))
	}
}

// ledgerIs checks the ledger holds exactly one (sender, stream) with the
// given highest serial and occupancy, or nothing when highest is 0.
func (r *rig) ledgerIs(name string, highest uint64, occupancy int) {
	r.t.Helper()
	l, err := r.st.Ledger(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	if highest == 0 {
		if len(l) != 0 {
			r.t.Fatalf("ledger should be empty: %+v", l[0])
		}
		return
	}
	if len(l) != 1 || l[0].Name != name || l[0].Highest != highest || l[0].Occupancy != occupancy {
		r.t.Fatalf("ledger = %v, want %s highest %d occupancy %d", ledgerString(l), name, highest, occupancy)
	}
}

func ledgerString(l []*state.LedgerEntry) string {
	var b bytes.Buffer
	for _, e := range l {
		fmt.Fprintf(&b, "{%s stream %d highest %d occupancy %d} ", e.Name, e.StreamID, e.Highest, e.Occupancy)
	}
	return b.String()
}

func p256(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func rsa2048(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// randomStream is a random stream identifier below 2^63, as the state
// package makes them.
func randomStream() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) >> 1
}

// outputs is a set of in-memory Outputs, one per item.
type outputs struct {
	mu   sync.Mutex
	outs map[int]*memOutput
	n    int // items made
	// fail, when set, makes an Output fail: it gets the item number.
	fail func(i int) *memOutput
}

// item is an Item reading env whose output goes to a memOutput.
func (o *outputs) item(name string, env []byte) receive.Item {
	o.mu.Lock()
	i := o.n
	o.n++
	o.mu.Unlock()
	return receive.Item{
		Name: name,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(env)), nil },
		Create: func() (receive.Output, error) {
			m := &memOutput{}
			if o.fail != nil {
				if f := o.fail(i); f != nil {
					m = f
				}
			}
			o.mu.Lock()
			defer o.mu.Unlock()
			if o.outs == nil {
				o.outs = map[int]*memOutput{}
			}
			o.outs[i] = m
			return m, nil
		},
	}
}

// committed is what item i's Output released, nil if it was not
// committed.
func (o *outputs) committed(i int) []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	m := o.outs[i]
	if m == nil || !m.done || m.aborted {
		return nil
	}
	return m.buf.Bytes()
}

// memOutput is an Output in memory. writeErr and syncErr inject
// failures: a full disk at write time, or at sync.
type memOutput struct {
	buf      bytes.Buffer
	limit    int // with writeErr: bytes accepted before it
	writeErr error
	syncErr  error
	done     bool // committed
	aborted  bool
}

func (m *memOutput) Write(p []byte) (int, error) {
	if m.writeErr != nil && m.buf.Len()+len(p) > m.limit {
		n := m.limit - m.buf.Len()
		m.buf.Write(p[:n])
		return n, m.writeErr
	}
	return m.buf.Write(p)
}

func (m *memOutput) Sync() error   { return m.syncErr }
func (m *memOutput) Commit() error { m.done = true; return nil }
func (m *memOutput) Abort()        { m.aborted = true }
