package main

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/state"
	"github.com/tokenseal/tokenseal/token/keyring"
	"github.com/urfave/cli/v2"
)

var openCommand = &cli.Command{
	Name:      "open",
	Usage:     "decrypt envelopes addressed to a key on the token, verifying sender, freshness and replay",
	UsageText: "tokenseal open [-o OUT] [--sender PUBKEY] [--allow-anonymous] [IN]\n   tokenseal open -o DIR IN...",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the plaintext to `OUT` (default stdout); with several inputs, a directory"},
		&cli.BoolFlag{Name: "force", Usage: "overwrite OUT if it exists"},
		&cli.StringSliceFlag{Name: "sender", Usage: "also trust the sender public key in `PUBKEY` (PEM/DER key or certificate) for this call (repeatable)"},
		&cli.BoolFlag{Name: "allow-anonymous", Usage: "accept envelopes without a sender signature (they carry no replay protection)"},
		&cli.DurationFlag{Name: "max-age", Value: 7 * 24 * time.Hour, Usage: "refuse signed envelopes whose timestamp is older than `DURATION`"},
		&cli.DurationFlag{Name: "max-skew", Value: 5 * time.Minute, Usage: "refuse signed envelopes whose timestamp is more than `DURATION` in the future"},
		&cli.Uint64Flag{Name: "window", Value: state.DefaultWindow, Usage: "width of the anti-replay window in serial `NUMBERS`"},
		flagStateDir,
		flagSync,
	},
	Action: openAction,
}

// opener holds what one open invocation shares across its inputs: one
// token login, one state database.
type opener struct {
	c      *cli.Context
	kr     *keyring.Keyring
	ids    []envelope.Identity
	opts   *envelope.OpenOptions
	force  bool
	sync   bool
	window uint64
	prog   *progress // nil: no progress bar
	size   int64     // of the inputs together; < 0 unknown

	mu      sync.Mutex // guards what follows; workers run in parallel
	st      *state.Store
	stErr   error
	extra   map[envelope.KeyID]crypto.PublicKey // --sender keys
	trusted map[envelope.KeyID]crypto.PublicKey // looked up in the state directory
	names   map[envelope.KeyID]string
}

func openAction(c *cli.Context) error {
	inputs := c.Args().Slice()
	if len(inputs) == 0 {
		inputs = []string{""}
	}
	out := c.String("output")
	if out == "-" {
		out = ""
	}
	if len(inputs) > 1 {
		fi, err := os.Stat(out)
		if out == "" || err != nil || !fi.IsDir() {
			return usageErrorf("with several inputs, -o must name an existing directory")
		}
	}
	if c.Uint64("window") == 0 {
		return usageErrorf("--window must be at least 1")
	}
	kr := newKeyring(c)
	defer kr.Close()
	o, err := newOpener(c, kr)
	if err != nil {
		return err
	}
	defer o.close()
	o.force, o.sync, o.window = c.Bool("force"), c.Bool("sync"), c.Uint64("window")

	// The progress bar counts ciphertext read; none when the plaintext
	// goes to the terminal.
	o.size = inputsSize(c.App.Reader, inputs)
	if out != "" || !isTTY(c.App.Writer) {
		o.prog = newProgress(c, "opening", o.size)
	}
	defer o.prog.Stop()

	if out == "" {
		err := o.openOne(inputs[0])
		if err == nil {
			o.prog.Finish()
		}
		return err
	}
	if len(inputs) == 1 {
		return o.openFiles(inputs, []string{out})
	}
	outs := make([]string, len(inputs))
	seen := map[string]string{}
	for i, in := range inputs {
		outs[i] = filepath.Join(out, outputName(in))
		// Refused before anything is opened: the second of two inputs
		// with one output name would be recorded in the ledger and then
		// fail (or, with --force, replace the first) at the final path,
		// its serial burned and a plaintext lost.
		if prev, ok := seen[outs[i]]; ok {
			return usageErrorf("inputs %s and %s would both be written to %s", prev, in, outs[i])
		}
		seen[outs[i]] = in
	}
	return o.openFiles(inputs, outs)
}

// inputsSize is the size of the inputs together, or -1 when one of them
// is not a regular file.
func inputsSize(stdin io.Reader, inputs []string) int64 {
	var total int64
	for _, in := range inputs {
		n := inputSize(stdin, in)
		if n < 0 {
			return -1
		}
		total += n
	}
	return total
}

// outputName is the plaintext's name for an envelope file: without a
// .tseal (or .tseal.asc) suffix, else with .out appended.
func outputName(in string) string {
	b := filepath.Base(in)
	for _, ext := range []string{".tseal.asc", ".tseal"} {
		if s, ok := strings.CutSuffix(b, ext); ok && s != "" {
			return s
		}
	}
	return b + ".out"
}

// newOpener prepares what opening shares across inputs (open, and rewrap
// for its original): the token identity, and the senders it trusts — the
// --sender keys first, then the state directory's trusted senders —
// refusing anonymous envelopes unless --allow-anonymous.
func newOpener(c *cli.Context, kr *keyring.Keyring) (*opener, error) {
	o := &opener{
		c:       c,
		kr:      kr,
		ids:     []envelope.Identity{kr},
		extra:   map[envelope.KeyID]crypto.PublicKey{},
		trusted: map[envelope.KeyID]crypto.PublicKey{},
		names:   map[envelope.KeyID]string{},
	}
	for _, f := range c.StringSlice("sender") {
		pub, err := readPublicKey(f)
		if err != nil {
			return nil, fmt.Errorf("sender %s: %w", f, err)
		}
		id, err := envelope.KeyIDOf(pub)
		if err != nil {
			return nil, fmt.Errorf("sender %s: %w", f, err)
		}
		o.extra[id] = pub
		o.names[id] = f
	}
	o.opts = &envelope.OpenOptions{RefuseAnonymous: !c.Bool("allow-anonymous"), Senders: o.sender}
	return o, nil
}

// close closes the state database if it was opened.
func (o *opener) close() {
	if o.st != nil {
		o.st.Close()
	}
}

func (o *opener) store() (*state.Store, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.st == nil && o.stErr == nil {
		o.st, o.stErr = openState(o.c)
	}
	return o.st, o.stErr
}

// sender resolves a signing key: --sender keys first, then the trusted
// senders in the state directory.
func (o *opener) sender(id envelope.KeyID) (crypto.PublicKey, error) {
	o.mu.Lock()
	pub, ok := o.extra[id]
	if !ok {
		pub, ok = o.trusted[id]
	}
	o.mu.Unlock()
	if ok {
		return pub, nil
	}
	st, err := o.store()
	if err != nil {
		return nil, err
	}
	t, err := st.LookupTrusted(context.Background(), id)
	if errors.Is(err, state.ErrNotFound) {
		return nil, envelope.ErrUnknownSender
	}
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	o.trusted[id], o.names[id] = t.Public, t.Name
	o.mu.Unlock()
	return t.Public, nil
}

func (o *opener) senderName(id envelope.KeyID) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if n := o.names[id]; n != "" {
		return n
	}
	return id.String()
}

// accept applies the freshness rule and records the serial in the ledger,
// as one transaction. It runs only after every chunk and the signature
// verified; a refusal changes nothing.
func (o *opener) accept(info *envelope.SenderInfo) error {
	return o.acceptBatch([]*envelope.SenderInfo{info})[0]
}

// acceptBatch checks freshness and records the serials of several verified
// envelopes in one ledger transaction (one fsync), returning an error per
// envelope. Serials are taken in order, so a duplicate within the batch is
// refused as a replay of the earlier one.
func (o *opener) acceptBatch(infos []*envelope.SenderInfo) []error {
	errs := make([]error, len(infos))
	now := time.Now()
	var items []state.AcceptItem
	var idx []int
	for i, info := range infos {
		ts := time.UnixMilli(int64(info.Timestamp))
		if err := state.CheckFreshness(ts, now, o.c.Duration("max-age"), o.c.Duration("max-skew")); err != nil {
			errs[i] = err
			continue
		}
		items = append(items, state.AcceptItem{
			KeyID: info.KeyID, Stream: info.StreamID, Serial: info.Serial,
			Name: o.senderName(envelope.KeyID(info.KeyID)),
		})
		idx = append(idx, i)
	}
	if len(items) == 0 {
		return errs
	}
	st, err := o.store()
	if err != nil {
		for _, i := range idx {
			errs[i] = err
		}
		return errs
	}
	res := st.AcceptBatch(context.Background(), items, o.window, now)
	for k, i := range idx {
		errs[i] = res[k]
	}
	return errs
}

// verified is an envelope decrypted into its temporary output file, not
// yet accepted.
type verified struct {
	i      int
	af     *atomicFile
	sender *envelope.SenderInfo
	err    error
}

// openFiles opens envelopes to files. Workers unwrap on the token (several
// sessions, one login) and decrypt into temporary files in parallel; one
// committer takes whatever is verified, records the batch in the ledger in
// one transaction and only then moves each accepted output into place.
// Every input is tried; each failure is reported, and the first one gives
// the exit code.
func (o *opener) openFiles(inputs, outs []string) error {
	order := serialOrder(inputs)
	workers := min(len(inputs), 2*runtime.NumCPU())
	jobs := make(chan int)
	// Room for a whole batch, so workers go on while the committer waits
	// for the disk.
	done := make(chan *verified, maxBatch)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				done <- o.verify(i, inputs[i], outs[i])
			}
		}()
	}
	// Credits bound the reorder buffer: an input is handed out only while
	// fewer than maxBatch+workers are handed out and not yet committed.
	// Otherwise a slow early input lets the other workers run through
	// the rest, each finished envelope waiting with its temporary file
	// open (or its plaintext in memory). The committer returns credits
	// and never waits for one, and what is handed out is always a prefix
	// of order, so the envelope it waits for is already being worked on.
	credits := make(chan struct{}, maxBatch+workers)
	go func() {
		for _, i := range order {
			credits <- struct{}{}
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		close(done)
	}()

	// Commit in the sorted order, whatever order the workers finish in:
	// a reorder buffer holds what finished early (at most maxBatch plus
	// the work in flight, by the credits above). Each batch is the run of
	// consecutive finished envelopes.
	pos := make([]int, len(inputs)) // input index -> place in order
	for p, i := range order {
		pos[i] = p
	}
	ready := map[int]*verified{}
	next := 0
	errs := make([]error, len(inputs))
	flush := func() {
		for next < len(order) && ready[next] != nil {
			var batch []*verified
			for next < len(order) && ready[next] != nil && len(batch) < maxBatch {
				batch = append(batch, ready[next])
				delete(ready, next)
				next++
			}
			o.commit(batch, errs)
			for range batch {
				<-credits
			}
		}
	}
	for v := range done {
		ready[pos[v.i]] = v
	drain:
		for {
			select {
			case v, ok := <-done:
				if !ok {
					break drain
				}
				ready[pos[v.i]] = v
			default:
				break drain
			}
		}
		flush()
	}
	flush()
	// The bar ends before any error is reported.
	if slices.ContainsFunc(errs, func(err error) bool { return err != nil }) {
		o.prog.Stop()
	} else {
		o.prog.Finish()
	}

	var first error
	for i, err := range errs {
		if err == nil {
			continue
		}
		if len(inputs) > 1 {
			err = fmt.Errorf("%s: %w", inputs[i], err)
		}
		if first == nil {
			first = err
		} else {
			report(o.c.App.ErrWriter, err)
		}
	}
	return first
}

// maxBatch bounds the envelopes recorded in one ledger transaction, and
// so the temporary files open at once.
const maxBatch = 128

// serialOrder returns the order in which to open inputs: signed envelopes
// by sender, stream and serial (so a batch given in any order, say by a
// shell glob, does not push early serials out of the replay window), then
// the others as given.
func serialOrder(inputs []string) []int {
	type key struct {
		signed bool
		id     [32]byte
		stream uint64
		serial uint64
		i      int
	}
	keys := make([]key, len(inputs))
	for i, in := range inputs {
		keys[i] = key{i: i}
		if len(inputs) == 1 || in == "" || in == "-" {
			continue
		}
		f, err := os.Open(in)
		if err != nil {
			continue
		}
		s, err := envelope.PeekSender(f)
		f.Close()
		if err == nil && s != nil {
			keys[i] = key{true, s.KeyID, s.StreamID, s.Serial, i}
		}
	}
	sort.SliceStable(keys, func(a, b int) bool {
		ka, kb := keys[a], keys[b]
		if ka.signed != kb.signed {
			return ka.signed
		}
		if !ka.signed {
			return ka.i < kb.i
		}
		if c := bytes.Compare(ka.id[:], kb.id[:]); c != 0 {
			return c < 0
		}
		if ka.stream != kb.stream {
			return ka.stream < kb.stream
		}
		return ka.serial < kb.serial
	})
	order := make([]int, len(keys))
	for i, k := range keys {
		order[i] = k.i
	}
	return order
}

// verify opens one envelope into a temporary file beside out. Nothing is
// at out when it returns.
func (o *opener) verify(i int, in, out string) *verified {
	v := &verified{i: i}
	if in != "" && in != "-" && sameFile(in, out) {
		v.err = usageErrorf("input and output are the same file")
		return v
	}
	if err := checkOutput(out, o.force); err != nil {
		v.err = err
		return v
	}
	src, err := openInput(o.c.App.Reader, in)
	if err != nil {
		v.err = err
		return v
	}
	defer src.Close()
	r, err := envelope.Open(o.prog.Reader(src), o.ids, o.opts)
	o.prog.Start() // after any PIN prompt
	if err != nil {
		v.err = err
		return v
	}
	// The plaintext goes to disk before the ledger hears of the envelope,
	// so a full disk fails here with the ledger untouched. The output is
	// an unnamed O_TMPFILE inode where the file system allows it: workers
	// create them in parallel without contending on the directory, and
	// only the committer names them.
	af, err := createOutput(out, o.force, 0o600)
	if err != nil {
		v.err = err
		return v
	}
	if _, err := r.WriteTo(af); err != nil {
		af.Abort()
		v.err = err
		return v
	}
	if o.sync {
		// Data on stable storage before the ledger moves.
		if err := af.Sync(); err != nil {
			af.Abort()
			v.err = err
			return v
		}
	}
	v.af, v.sender = af, r.Sender
	logOpened(in, &r.Opened)
	return v
}

// logOpened says at --verbose what was opened: the stanza used, and the
// sender's and any previous sender's stamps.
func logOpened(in string, o *envelope.Opened) {
	attrs := []any{"input", in, "key_id", o.KeyID.String()}
	if s := o.Sender; s != nil {
		attrs = append(attrs, "sender", envelope.KeyID(s.KeyID).String(), "stream", s.StreamID, "serial", s.Serial,
			"timestamp", time.UnixMilli(int64(s.Timestamp)).UTC().Format(time.RFC3339))
	}
	if p := o.PreviousSender; p != nil {
		attrs = append(attrs, "previous_sender", envelope.KeyID(p.KeyID).String(), "previous_serial", p.Serial,
			"previous_timestamp", time.UnixMilli(int64(p.Timestamp)).UTC().Format(time.RFC3339))
	}
	slog.Debug("envelope verified", attrs...)
}

// commit records a batch of verified envelopes in the ledger and moves the
// accepted outputs into place. If the process dies between the ledger
// commit and a rename, that envelope counts as accepted and its plaintext
// is lost: a resend is refused as a replay. That is the side that never
// accepts twice.
func (o *opener) commit(batch []*verified, errs []error) {
	var signed []*verified
	var infos []*envelope.SenderInfo
	for _, v := range batch {
		if v.err == nil && v.sender != nil {
			signed = append(signed, v)
			infos = append(infos, v.sender)
		}
	}
	if len(infos) > 0 {
		for k, err := range o.acceptBatch(infos) {
			if err != nil {
				signed[k].err = err
			}
		}
	}
	for _, v := range batch {
		switch {
		case v.err != nil && v.af != nil:
			v.af.Abort()
		case v.err == nil:
			v.err = v.af.Commit(o.force, o.sync)
		}
		errs[v.i] = v.err
	}
}

// openOne opens one envelope to standard output.
func (o *opener) openOne(in string) error {
	src, err := openInput(o.c.App.Reader, in)
	if err != nil {
		return err
	}
	defer src.Close()
	return o.toStdout(src)
}

// toStdout opens to standard output. An anonymous envelope streams: each
// 64 KiB chunk is written once it authenticated, and a failure ends the
// output early with a non-zero exit. A signed envelope is first verified
// whole and recorded in the ledger, reading the input into a private,
// already-unlinked spool file (ciphertext only), then decrypted from the
// spool: no plaintext is released before the envelope is accepted.
func (o *opener) toStdout(src io.Reader) error {
	spool, err := newSpool()
	if err != nil {
		return err
	}
	defer spool.Close()

	tee := &switchWriter{w: spool}
	opts := *o.opts
	opts.KeepFileKey = true
	r, err := envelope.Open(io.TeeReader(o.prog.Reader(src), tee), o.ids, &opts)
	o.prog.Start() // after any PIN prompt
	if err != nil {
		return err
	}
	defer r.Close()
	if r.Sender == nil {
		// Anonymous (allowed): stream directly, no spool needed.
		tee.w = io.Discard
		_, err := r.WriteTo(o.c.App.Writer)
		return err
	}
	o.prog.AddTotal(o.size) // the spool is read a second time
	if _, err := r.WriteTo(io.Discard); err != nil {
		return err
	}
	logOpened("-", &r.Opened)
	if err := o.accept(r.Sender); err != nil {
		return err
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("reading spool file: %w", err)
	}
	// The second pass reuses the file key: no second unwrap on the token
	// after the ledger has counted the envelope.
	r2, err := r.Reopen(o.prog.Reader(spool))
	if err != nil {
		return err
	}
	_, err = r2.WriteTo(o.c.App.Writer)
	return err
}

// switchWriter is a writer whose destination can be changed.
type switchWriter struct{ w io.Writer }

func (s *switchWriter) Write(p []byte) (int, error) { return s.w.Write(p) }
