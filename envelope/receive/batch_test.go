package receive_test

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/receive"
	"github.com/tokenseal/tokenseal/envelope/state"
)

// A batch given out of order is taken in serial order, sender by sender:
// even with a window of one, every envelope is accepted. Anonymous ones
// come after, in the order given.
func TestBatchSerialOrder(t *testing.T) {
	r := newRig(t)
	alice, carol := p256(t), p256(t)
	r.trust("alice", alice.Public())
	r.trust("carol", carol.Public())
	sa, sc := randomStream(), randomStream()
	var items []receive.Item
	var plains [][]byte
	outs := &outputs{}
	add := func(env, plain []byte) {
		items = append(items, outs.item(fmt.Sprint(len(items)), env))
		plains = append(plains, plain)
	}
	for _, s := range []uint64{3, 1, 2} {
		for _, who := range []struct {
			k      crypto.Signer
			stream uint64
		}{{alice, sa}, {carol, sc}} {
			p := []byte(fmt.Sprintf("serial %d", s))
			add(r.seal(p, &envelope.Sender{Signer: who.k, StreamID: who.stream, Serial: s, Time: time.Now()}), p)
		}
	}
	add(r.seal([]byte("anonymous"), nil), []byte("anonymous"))
	rcv := r.receiver(window(1), func(c *receive.Config) { c.AllowAnonymous = true })
	for i, err := range rcv.Batch(items) {
		if err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
		if got := outs.committed(i); !bytes.Equal(got, plains[i]) {
			t.Fatalf("item %d: released %q", i, got)
		}
	}
	l, _ := r.st.Ledger(t.Context())
	if len(l) != 2 || l[0].Highest != 3 || l[1].Highest != 3 {
		t.Fatalf("ledger %s", ledgerString(l))
	}
}

// The same envelope twice in one batch: the ledger takes the batch in
// order, so the second is a replay of the first; one plaintext released.
func TestBatchDuplicate(t *testing.T) {
	r := newRig(t)
	alice := p256(t)
	r.trust("alice", alice.Public())
	env := r.seal([]byte("once"), &envelope.Sender{Signer: alice, StreamID: 7, Serial: 1, Time: time.Now()})
	outs := &outputs{}
	errs := r.receiver().Batch([]receive.Item{outs.item("a", env), outs.item("b", env)})
	if errs[0] != nil || !errors.Is(errs[1], state.ErrReplay) {
		t.Fatalf("errors %v", errs)
	}
	if outs.committed(0) == nil || outs.committed(1) != nil || !outs.outs[1].aborted {
		t.Fatal("the replay's output was released or not aborted")
	}
	r.ledgerIs("alice", 1, 1)
}

// Every item is tried: a bad one in the middle costs only itself.
func TestBatchEveryItemTried(t *testing.T) {
	r := newRig(t)
	alice := p256(t)
	r.trust("alice", alice.Public())
	var items []receive.Item
	outs := &outputs{}
	for s := uint64(1); s <= 3; s++ {
		env := r.seal([]byte("x"), &envelope.Sender{Signer: alice, StreamID: 7, Serial: s, Time: time.Now()})
		if s == 2 {
			env[len(env)-1] ^= 1
		}
		items = append(items, outs.item("", env))
	}
	items = append(items, receive.Item{Open: func() (io.ReadCloser, error) { return nil, errors.New("cannot open") }})
	errs := r.receiver().Batch(items)
	if errs[0] != nil || !errors.Is(errs[1], envelope.ErrSignature) || errs[2] != nil || errs[3] == nil {
		t.Fatalf("errors %v", errs)
	}
	r.ledgerIs("alice", 3, 2)
}

// A full disk while the plaintext is written, or when it is synced,
// fails that envelope with the ledger untouched: the envelope opens
// afterwards, once.
func TestBatchFullDisk(t *testing.T) {
	r := newRig(t)
	alice := p256(t)
	r.trust("alice", alice.Public())
	plain := make([]byte, 3<<20)
	env := r.seal(plain, &envelope.Sender{Signer: alice, StreamID: 7, Serial: 1, Time: time.Now()})
	for name, fail := range map[string]*memOutput{
		"write": {limit: 1 << 20, writeErr: syscall.ENOSPC},
		"sync":  {syncErr: fmt.Errorf("writing output: %w", syscall.ENOSPC)},
	} {
		outs := &outputs{fail: func(int) *memOutput { return fail }}
		errs := r.receiver().Batch([]receive.Item{outs.item("", env)})
		if !errors.Is(errs[0], syscall.ENOSPC) {
			t.Fatalf("%s: %v", name, errs[0])
		}
		if !fail.aborted || fail.done {
			t.Fatalf("%s: output not aborted", name)
		}
		r.ledgerIs("", 0, 0)
	}
	r.openOK(r.receiver(), env, plain)
	r.refused(r.receiver(), env, state.ErrReplay, `^replayed envelope: serial 1 from alice`)
}

// While the first envelope of a batch is still being read, the other
// workers go on through the rest, and every finished envelope waits for
// its turn with its Output open. Unbounded, a slow first input makes the
// process hold one open output (a file descriptor) per later input; the
// outputs open at once must stay below maxBatch plus the work in flight.
func TestBatchReorderBounded(t *testing.T) {
	r := newRig(t)
	env := r.seal(make([]byte, 100<<10), nil)
	first := r.seal([]byte("first"), nil)
	const n = 400
	bound := int64(receive.MaxBatch + min(n+1, 2*runtime.NumCPU()))
	var open, most, made atomic.Int64
	release := make(chan struct{})
	var opens atomic.Int32 // of the first input: read for the order, then opened
	items := make([]receive.Item, n+1)
	for i := range items {
		data := env
		if i == 0 {
			data = first
		}
		items[i] = receive.Item{
			Open: func() (io.ReadCloser, error) {
				var src io.Reader = bytes.NewReader(data)
				if i == 0 && opens.Add(1) == 2 {
					src = io.MultiReader(gate(release), src)
				}
				return io.NopCloser(src), nil
			},
			Create: func() (receive.Output, error) {
				made.Add(1)
				now := open.Add(1)
				for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
				}
				return &countedOutput{open: &open}, nil
			},
		}
	}
	done := make(chan []error)
	go func() { done <- r.receiver(func(c *receive.Config) { c.AllowAnonymous = true }).Batch(items) }()
	// Wait until the workers stop making outputs (they ran into the
	// bound, or through everything), then let the first input go on.
	for last := int64(-1); ; {
		time.Sleep(100 * time.Millisecond)
		if m := made.Load(); m == last {
			break
		} else {
			last = m
		}
	}
	stalled := most.Load()
	close(release)
	for i, err := range <-done {
		if err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
	}
	if stalled > bound || most.Load() > bound {
		t.Fatalf("%d outputs open at once behind a slow first input (%d at the end), bound %d", stalled, most.Load(), bound)
	}
	t.Logf("at most %d outputs open at once (bound %d)", most.Load(), bound)
}

// gate is a reader that blocks until release is closed, then is empty.
func gate(release chan struct{}) io.Reader {
	return readerFunc(func([]byte) (int, error) { <-release; return 0, io.EOF })
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// countedOutput counts the outputs open (made, not yet committed or
// aborted).
type countedOutput struct {
	open *atomic.Int64
	once sync.Once
}

func (c *countedOutput) Write(p []byte) (int, error) { return len(p), nil }
func (c *countedOutput) Sync() error                 { return nil }
func (c *countedOutput) Commit() error               { c.once.Do(func() { c.open.Add(-1) }); return nil }
func (c *countedOutput) Abort()                      { c.once.Do(func() { c.open.Add(-1) }) }
