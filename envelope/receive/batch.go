package receive

import (
	"bufio"
	"bytes"
	"cmp"
	"io"
	"runtime"
	"slices"
	"sync"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/internal/format"
)

// An Item is one envelope of a batch, and where its plaintext goes.
type Item struct {
	// Name stands for the envelope in log records.
	Name string
	// Open opens the envelope. Batch calls it twice when there are
	// several items and this one is not Once: first to read the
	// sender's serial (unverified) for the order, then to open it.
	Open func() (io.ReadCloser, error)
	// Once marks a source that can be read only once (standard input):
	// it is not read for the order, and goes among the anonymous ones.
	Once bool
	// Create makes the Output, once the envelope's header authenticated.
	Create func() (Output, error)
}

// maxBatch bounds the envelopes recorded in one ledger transaction, and
// so the outputs open at once.
const maxBatch = 128

// Batch opens items, each to its own Output, and returns an error per
// item; every item is tried. Workers unwrap and decrypt into the outputs
// in parallel (the identities are called from several goroutines); one
// committer takes whatever is verified in serial order, records it in
// the ledger in one transaction, and only then commits each accepted
// Output.
//
// The order is by sender, stream and serial for signed envelopes, so a
// batch given in any order (a shell glob) does not push early serials out
// of the replay window, then the anonymous ones as given. At most
// maxBatch envelopes plus the work in flight wait, verified, for their
// turn.
//
// If the process dies between the ledger's commit and an Output's, that
// envelope counts as accepted and its plaintext is lost: a resend is
// refused as a replay. That is the side that never accepts twice.
func (r *Receiver) Batch(items []Item) []error {
	b := &batch{
		r:       r,
		items:   items,
		order:   serialOrder(items),
		workers: min(len(items), 2*runtime.NumCPU()),
		errs:    make([]error, len(items)),
	}
	// Room for a whole batch, so workers go on while the committer waits
	// for the disk.
	b.done = make(chan *verified, maxBatch)
	b.credits = make(chan struct{}, maxBatch+b.workers)
	go b.dispatch()
	b.collect()
	return b.errs
}

type batch struct {
	r       *Receiver
	items   []Item
	order   []int // item indexes in the order of commitment
	workers int
	done    chan *verified
	credits chan struct{}
	errs    []error
}

// verified is an envelope decrypted into its Output, not yet accepted.
type verified struct {
	i      int
	out    Output
	sender *envelope.SenderInfo
	err    error
}

// dispatch hands the items out to the workers in order. Credits bound
// the reorder buffer: an item is handed out only while fewer than
// maxBatch+workers are handed out and not yet committed. Otherwise a slow
// early item lets the other workers run through the rest, each finished
// envelope waiting with its Output open. The committer returns credits
// and never waits for one, and what is handed out is always a prefix of
// the order, so the envelope it waits for is already being worked on.
func (b *batch) dispatch() {
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range b.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				b.done <- b.r.verify(i, b.items[i])
			}
		}()
	}
	for _, i := range b.order {
		b.credits <- struct{}{}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(b.done)
}

// collect commits in the order, whatever order the workers finish in: a
// reorder buffer holds what finished early, and each commit takes the
// run of consecutive finished envelopes.
func (b *batch) collect() {
	pos := make([]int, len(b.items)) // item index -> place in the order
	for p, i := range b.order {
		pos[i] = p
	}
	ready := map[int]*verified{}
	next := 0
	for v := range b.done {
		ready[pos[v.i]] = v
		for more := true; more; {
			select {
			case v, ok := <-b.done:
				if ok {
					ready[pos[v.i]] = v
				}
				more = ok
			default:
				more = false
			}
		}
		next = b.flush(ready, next)
	}
	b.flush(ready, next)
}

// flush commits the runs of ready envelopes from next on, maxBatch at a
// time, and returns the new next.
func (b *batch) flush(ready map[int]*verified, next int) int {
	for next < len(b.order) && ready[next] != nil {
		var group []*verified
		for next < len(b.order) && ready[next] != nil && len(group) < maxBatch {
			group = append(group, ready[next])
			delete(ready, next)
			next++
		}
		b.r.commit(group, b.errs)
		for range group {
			<-b.credits
		}
	}
	return next
}

// verify opens one envelope into its Output. The plaintext reaches the
// Output (and Sync) before the ledger hears of the envelope, so a full
// disk fails here with the ledger untouched.
func (r *Receiver) verify(i int, it Item) *verified {
	v := &verified{i: i}
	src, err := it.Open()
	if err != nil {
		v.err = err
		return v
	}
	defer src.Close()
	in, isCMS, err := sniff(src)
	if err != nil {
		v.err = err
		return v
	}
	if isCMS {
		return r.verifyCMS(v, it, in)
	}
	rd, err := envelope.Open(r.cfg.Watch.Reader(in), r.cfg.Identities, r.openOptions())
	r.cfg.Watch.Started()
	if err != nil {
		v.err = err
		return v
	}
	out, err := it.Create()
	if err != nil {
		v.err = err
		return v
	}
	if _, err = rd.WriteTo(out); err == nil {
		err = out.Sync()
	}
	if err != nil {
		out.Abort()
		v.err = err
		return v
	}
	v.out, v.sender = out, rd.Sender
	r.logOpened(it.Name, &rd.Opened)
	return v
}

// commit records a group of verified envelopes in the ledger and commits
// the accepted outputs; the others are aborted.
func (r *Receiver) commit(group []*verified, errs []error) {
	var signed []*verified
	var senders []*envelope.SenderInfo
	for _, v := range group {
		if v.err == nil && v.sender != nil {
			signed = append(signed, v)
			senders = append(senders, v.sender)
		}
	}
	if len(senders) > 0 {
		for k, err := range r.accept(senders) {
			if err != nil {
				signed[k].err = err
			}
		}
	}
	for _, v := range group {
		switch {
		case v.err != nil && v.out != nil:
			v.out.Abort()
		case v.err == nil:
			if v.err = v.out.Commit(); v.err != nil {
				v.out.Abort()
			}
		}
		errs[v.i] = v.err
	}
}

// serialOrder returns the order of commitment (see Batch).
func serialOrder(items []Item) []int {
	type key struct {
		signed         bool
		id             [32]byte
		stream, serial uint64
		i              int
	}
	keys := make([]key, len(items))
	for i, it := range items {
		keys[i] = key{i: i}
		if len(items) == 1 || it.Once {
			continue
		}
		if s := peekSender(it.Open); s != nil {
			keys[i] = key{true, s.KeyID, s.StreamID, s.Serial, i}
		}
	}
	slices.SortStableFunc(keys, func(a, b key) int {
		if a.signed != b.signed {
			if a.signed {
				return -1
			}
			return 1
		}
		if !a.signed {
			return cmp.Compare(a.i, b.i)
		}
		return cmp.Or(bytes.Compare(a.id[:], b.id[:]), cmp.Compare(a.stream, b.stream), cmp.Compare(a.serial, b.serial))
	})
	order := make([]int, len(keys))
	for i, k := range keys {
		order[i] = k.i
	}
	return order
}

// peekSender reads just the header of the envelope open returns, and
// returns its sender extension, unverified; nil for an anonymous
// envelope or one that does not parse (it fails when it is opened).
func peekSender(open func() (io.ReadCloser, error)) *format.Sender {
	f, err := open()
	if err != nil {
		return nil
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 4096)
	var in io.Reader = br
	if peek, _ := br.Peek(len(format.ArmorBegin)); format.IsArmored(peek) {
		in = format.NewArmoredReader(br)
	}
	h, _, err := format.ReadHeader(in)
	if err != nil {
		return nil
	}
	return h.Sender
}
