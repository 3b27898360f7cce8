//go:build unix

package main

// Process-level tests of the shared PostgreSQL ledger (issue 14): several
// "hosts" (separate state directories, token copies and processes of the
// real binary) opening with one database through --state-url's
// environment variable, against a PostgreSQL server the test starts
// (internal/pgtest) and a SoftHSM2 token (softhsmtest). The envelopes
// are sealed once, in-process, by a software signing key the recipients
// trust; the recipients' exchange key is on the token.
//
// Pass or fail never depends on timing: the kill and restart test checks
// invariants that hold wherever the kill lands; only the counts it logs
// vary.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/state/postgres"
	"github.com/tokenseal/tokenseal/internal/pgtest"
	"github.com/tokenseal/tokenseal/internal/softhsmtest"
)

const (
	fleetHosts     = 3
	fleetOpeners   = 4 // per host
	fleetEnvelopes = 1000
)

func TestFleet(t *testing.T) {
	if _, err := softhsmtest.FindModule(); err != nil {
		t.Fatal(err) // never skip: CI must have SoftHSM2
	}
	if _, err := pgtest.Bin(); err != nil {
		t.Fatal(err) // nor PostgreSQL
	}
	srv := pgtest.Start(t, "fsync=off")
	f := newFleet(t, srv)
	t.Run("ExactlyOnce", f.testExactlyOnce)
	t.Run("RestartAndKill", f.testRestartAndKill)
	t.Run("FailClosed", f.testFailClosed)
	t.Run("FleetSenders", f.testFleetSenders)
	t.Run("CopyAndMigrate", f.testCopyAndMigrate)
	t.Run("DoctorAndInspect", f.testDoctorAndInspect)
}

// fleet is what the subtests share: the token (with the recipients'
// exchange key "bob" and a signing key "me"), one copy of the token per
// opener, and the envelopes.
type fleet struct {
	r      *rig
	srv    *pgtest.Server
	confs  []string // SOFTHSM2_CONF of each token copy
	signer *ecdsa.PrivateKey
	sender string // its public key, PEM
	bob    envelope.Recipient
	envs   []string // envelope files
	plains [][]byte
}

func newFleet(t *testing.T, srv *pgtest.Server) *fleet {
	r := newRig(t)
	f := &fleet{r: r, srv: srv}
	bobPEM := r.key("bob", "p256", "exchange")
	r.key("me", "p256", "sign")
	var err error
	if f.bob, err = envelope.ParseRecipient(r.read(bobPEM)); err != nil {
		t.Fatal(err)
	}
	if f.signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(f.signer.Public())
	f.sender = r.write("sender.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	for i := 0; i < fleetHosts*fleetOpeners; i++ {
		f.confs = append(f.confs, copyToken(t, r.tok, r.path(fmt.Sprintf("hsm-%d", i))))
	}
	start := time.Now()
	for i := 0; i < fleetEnvelopes; i++ {
		plain := []byte(fmt.Sprintf("envelope %d\n", i))
		env := r.path(fmt.Sprintf("in/e%04d.tseal", i))
		f.seal(t, env, plain, 7, uint64(i+1))
		f.envs, f.plains = append(f.envs, env), append(f.plains, plain)
	}
	t.Logf("sealed %d envelopes in-process in %s", fleetEnvelopes, time.Since(start).Round(time.Millisecond))
	return f
}

// copyToken copies the token's files into dir and returns the
// SOFTHSM2_CONF that points at the copy: each opener its own, since
// SoftHSM2 rewrites its token file at every login.
func copyToken(t *testing.T, tok *softhsmtest.Token, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", filepath.Join(tok.Dir, "tokens"), filepath.Join(dir, "tokens")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", filepath.Join(dir, "tokens"))
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return conf
}

// seal writes an envelope to bob signed by f.signer with the given stream
// and serial.
func (f *fleet) seal(t *testing.T, path string, plain []byte, stream, serial uint64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := envelope.Seal(&buf, []envelope.Recipient{f.bob}, &envelope.SealOptions{
		Sender: &envelope.Sender{Signer: f.signer, StreamID: stream, Serial: serial, Time: time.Now()},
	})
	if err == nil {
		_, err = w.Write(plain)
	}
	if err == nil {
		err = w.Close()
	}
	if err == nil {
		err = os.WriteFile(path, buf.Bytes(), 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// command is a tokenseal process of opener i (its token copy, its host's
// state directory) using the database url.
func (f *fleet) command(ctx context.Context, i int, url string, args ...string) *exec.Cmd {
	state := f.r.path(fmt.Sprintf("host-%d-state", i/fleetOpeners))
	cmd := f.r.command(ctx, state, args...)
	cmd.Env = f.r.environ(state, "SOFTHSM2_CONF="+f.confs[i], "TOKENSEAL_STATE_URL="+url, "PGPASSFILE="+f.srv.PassFile)
	return cmd
}

// run runs a tokenseal process of opener i to completion.
func (f *fleet) run(t *testing.T, i int, url string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	cmd := f.command(ctx, i, url, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("tokenseal %s: still running after %s", strings.Join(args, " "), deadline)
	}
	return result{procExit(t, err), o.String(), e.String()}
}

func procExit(t *testing.T, err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

func (f *fleet) expect(t *testing.T, want, i int, url string, args ...string) result {
	t.Helper()
	res := f.run(t, i, url, args...)
	if res.code != want {
		t.Fatalf("tokenseal %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.code, want, res.stdout, res.stderr)
	}
	return res
}

// database makes a new database trusting the sender and returns its URL.
func (f *fleet) database(t *testing.T) (db, url string) {
	db = f.srv.NewDatabase(t)
	url = f.srv.URL(db)
	f.expect(t, 0, 0, url, "trust", "add", "alice", f.sender)
	return db, url
}

// fleetOpener is one batch open started in the background.
type fleetOpener struct {
	i      int
	out    string
	cmd    *exec.Cmd
	stderr bytes.Buffer
	code   int
	done   chan struct{}
}

// startOpeners starts one batch open of every envelope per opener index
// in which, each into its own output directory under dir.
func (f *fleet) startOpeners(t *testing.T, ctx context.Context, url, dir string, which []int) []*fleetOpener {
	var ops []*fleetOpener
	for _, i := range which {
		o := &fleetOpener{i: i, out: filepath.Join(dir, fmt.Sprintf("out-%d", i)), done: make(chan struct{})}
		if err := os.MkdirAll(o.out, 0o700); err != nil {
			t.Fatal(err)
		}
		o.cmd = f.command(ctx, i, url, append([]string{"open", "-o", o.out}, f.envs...)...)
		o.cmd.Stderr = &o.stderr
		if err := o.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			defer close(o.done)
			err := o.cmd.Wait()
			if ee, ok := err.(*exec.ExitError); ok {
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					o.code = -int(ws.Signal())
					return
				}
				o.code = ee.ExitCode()
			} else if err != nil {
				o.code = -1000
			}
		}()
		ops = append(ops, o)
	}
	return ops
}

func waitOpeners(t *testing.T, ctx context.Context, ops []*fleetOpener) {
	for _, o := range ops {
		select {
		case <-o.done:
		case <-ctx.Done():
			t.Fatalf("opener %d still running after the deadline: a deadlock?", o.i)
		}
	}
}

// outputs counts, per envelope, the output directories holding its
// plaintext, checking each plaintext.
func (f *fleet) outputs(t *testing.T, ops []*fleetOpener) []int {
	t.Helper()
	n := make([]int, len(f.envs))
	for _, o := range ops {
		for k, env := range f.envs {
			got, err := os.ReadFile(filepath.Join(o.out, outputName(env)))
			if os.IsNotExist(err) {
				continue
			}
			if err != nil || !bytes.Equal(got, f.plains[k]) {
				t.Fatalf("opener %d: output of %s: %q %v", o.i, env, got, err)
			}
			n[k]++
		}
	}
	return n
}

// ledgerRows checks the ledger's tables are consistent and returns the
// accepted serials of the fleet's stream.
func (f *fleet) ledgerRows(t *testing.T, db string) map[uint64]bool {
	t.Helper()
	ctx := context.Background()
	c, err := f.srv.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	rows, err := c.Query(ctx, `SELECT serial FROM tokenseal.accepted WHERE stream_id = 7`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint64]bool{}
	var maxSerial uint64
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		serial := uint64(s) ^ 1<<63
		if got[serial] {
			t.Fatalf("serial %d recorded twice", serial)
		}
		got[serial], maxSerial = true, max(maxSerial, serial)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 {
		return got
	}
	var highest int64
	var n int
	if err := c.QueryRow(ctx, `SELECT highest, (SELECT count(*) FROM tokenseal.streams) FROM tokenseal.streams WHERE stream_id = 7`).Scan(&highest, &n); err != nil {
		t.Fatal(err)
	}
	if uint64(highest)^1<<63 != maxSerial || n != 1 {
		t.Fatalf("stream row: highest %d, %d streams; accepted serials up to %d", uint64(highest)^1<<63, n, maxSerial)
	}
	return got
}

// Three hosts of four openers each open the same 1,000 envelopes at once:
// each is accepted exactly once, every other attempt is refused as a
// replay (exit 5), nobody hangs, no output is lost.
func (f *fleet) testExactlyOnce(t *testing.T) {
	db, url := f.database(t)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	var all []int
	for i := 0; i < fleetHosts*fleetOpeners; i++ {
		all = append(all, i)
	}
	ops := f.startOpeners(t, ctx, url, t.TempDir(), all)
	waitOpeners(t, ctx, ops)
	t.Logf("%d openers × %d envelopes: %s", len(ops), fleetEnvelopes, time.Since(start).Round(time.Millisecond))
	counts := f.outputs(t, ops)
	for k, n := range counts {
		if n != 1 {
			t.Fatalf("%s: %d outputs, want exactly 1", f.envs[k], n)
		}
	}
	for _, o := range ops {
		accepted := 0
		for k := range f.envs {
			if _, err := os.Stat(filepath.Join(o.out, outputName(f.envs[k]))); err == nil {
				accepted++
			}
		}
		lines := strings.Split(strings.TrimSpace(o.stderr.String()), "\n")
		if o.stderr.Len() == 0 {
			lines = nil
		}
		want := 0
		if accepted < fleetEnvelopes {
			want = 5
		}
		if o.code != want || len(lines) != fleetEnvelopes-accepted {
			t.Fatalf("opener %d: exit %d (want %d), %d accepted, %d error lines", o.i, o.code, want, accepted, len(lines))
		}
		for _, l := range lines {
			if !strings.Contains(l, "replayed envelope: serial") {
				t.Fatalf("opener %d: %s", o.i, l)
			}
		}
	}
	if got := f.ledgerRows(t, db); len(got) != fleetEnvelopes {
		t.Fatalf("%d serials in the ledger", len(got))
	}
	l := f.expect(t, 0, 5, url, "ledger", "show", "--json")
	if !strings.Contains(l.stdout, `"highest_serial": 1000`) || !strings.Contains(l.stdout, `"window_occupancy": 1000`) || !strings.Contains(l.stdout, `"sender": "alice"`) {
		t.Fatalf("ledger show: %s", l.stdout)
	}
}

// The server is stopped and restarted in the middle of the run and some
// openers are killed: still nothing is accepted twice, the ledger stays
// consistent, and a second round accepts whatever the first did not.
func (f *fleet) testRestartAndKill(t *testing.T) {
	db, url := f.database(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*deadline)
	defer cancel()
	dir := t.TempDir()
	var all []int
	for i := 0; i < fleetHosts*fleetOpeners; i++ {
		all = append(all, i)
	}
	ops := f.startOpeners(t, ctx, url, dir, all)
	// Once some envelopes are in, kill one opener per host and restart the
	// server under the rest.
	f.waitAccepted(t, ctx, db, 100)
	for h := 0; h < fleetHosts; h++ {
		ops[h*fleetOpeners].cmd.Process.Signal(syscall.SIGKILL)
	}
	f.srv.Stop()
	time.Sleep(time.Second) // long enough for some openers to find no server
	if err := f.srv.Start(); err != nil {
		t.Fatal(err)
	}
	waitOpeners(t, ctx, ops)
	codes := map[int]int{}
	for _, o := range ops {
		codes[o.code]++
		if o.code != 0 && o.code != 1 && o.code != 5 && o.code != -int(syscall.SIGKILL) {
			t.Fatalf("opener %d: exit %d: %s", o.i, o.code, o.stderr.String())
		}
	}
	first := f.outputs(t, ops)
	accepted := f.ledgerRows(t, db)
	// A second round, one opener per host, takes the rest.
	more := f.startOpeners(t, ctx, url, filepath.Join(dir, "again"), []int{1, 5, 9})
	waitOpeners(t, ctx, more)
	for _, o := range more {
		if o.code != 0 && o.code != 5 {
			t.Fatalf("second round, opener %d: exit %d: %s", o.i, o.code, o.stderr.String())
		}
	}
	counts := f.outputs(t, append(ops, more...))
	lost := 0
	for k, n := range counts {
		if n > 1 {
			t.Fatalf("%s accepted %d times", f.envs[k], n)
		}
		if first[k] == 1 && !accepted[uint64(k+1)] {
			t.Fatalf("%s released but not in the ledger", f.envs[k])
		}
		if n == 0 {
			lost++ // accepted by a killed opener, or by a commit whose answer was lost
		}
	}
	if got := f.ledgerRows(t, db); len(got) != fleetEnvelopes {
		t.Fatalf("%d serials in the ledger after the second round", len(got))
	}
	t.Logf("exit codes %v; %d accepted before the second round; %d outputs lost to kills and the restart", codes, len(accepted), lost)
}

// waitAccepted waits until the ledger holds n serials.
func (f *fleet) waitAccepted(t *testing.T, ctx context.Context, db string, n int) {
	t.Helper()
	for {
		c, err := f.srv.Connect(ctx, db)
		if err == nil {
			var got int
			err = c.QueryRow(ctx, `SELECT count(*) FROM tokenseal.accepted`).Scan(&got)
			c.Close(ctx)
			if err == nil && got >= n {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the ledger never reached %d serials", n)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Fail closed: an unreachable database, a statement timeout, a
// connection cut while the batch waits, a stopped server: exit 1, one
// line, no output, nothing recorded; the next run succeeds.
func (f *fleet) testFailClosed(t *testing.T) {
	db, url := f.database(t)
	out := f.r.path("closed.txt")
	refused := func(url, why string) {
		t.Helper()
		res := f.run(t, 0, url, "open", "-o", out, f.envs[0])
		lines := strings.Split(strings.TrimSpace(res.stderr), "\n")
		if res.code != 1 || len(lines) != 1 || !strings.HasPrefix(lines[0], "tokenseal: error: ") || !strings.Contains(res.stderr, why) {
			t.Fatalf("exit %d, want 1 with one line saying %q: %s", res.code, why, res.stderr)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Fatalf("%s written: %v", out, err)
		}
		f.r.noTemp(out)
	}
	refused("postgres://tokenseal@127.0.0.1:1/nothing?sslmode=disable", "state database postgres://tokenseal@127.0.0.1:1/nothing")

	// Another session holds the ledger's stream table.
	ctx := context.Background()
	c, err := f.srv.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, `BEGIN; LOCK TABLE tokenseal.streams IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	refused(url+"&options=-c%20statement_timeout%3D300", "statement timeout")

	// The connection of an opener waiting for the lock is cut.
	done := make(chan result, 1)
	go func() { done <- f.run(t, 0, url, "open", "-o", out, f.envs[0]) }()
	var res result
	for cut := false; !cut; {
		select {
		case res = <-done:
			t.Fatalf("the opener did not wait for the lock: exit %d: %s", res.code, res.stderr)
		case <-time.After(10 * time.Millisecond):
		}
		// Inside a transaction pg_stat_activity is a snapshot taken at
		// its first reading: clear it, or a slow opener (a -race build
		// starts in a second) is never seen waiting.
		if _, err := c.Exec(ctx, `SELECT pg_stat_clear_snapshot()`); err != nil {
			t.Fatal(err)
		}
		err := c.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) > 0 FROM pg_stat_activity
			WHERE application_name = 'tokenseal' AND wait_event_type = 'Lock'`).Scan(&cut)
		if err != nil {
			t.Fatal(err)
		}
	}
	if res = <-done; res.code != 1 || strings.Count(res.stderr, "\n") != 1 || !strings.Contains(res.stderr, "terminating connection") {
		t.Fatalf("connection cut: exit %d: %s", res.code, res.stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("%s written after the connection was cut", out)
	}
	if _, err := c.Exec(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}

	f.srv.Stop()
	refused(url, "state database "+url)
	if err := f.srv.Start(); err != nil {
		t.Fatal(err)
	}
	if got := f.ledgerRows(t, db); len(got) != 0 {
		t.Fatalf("refused runs recorded %v", got)
	}
	f.expect(t, 0, 0, url, "open", "-o", out, f.envs[0])
	if got := f.r.read(out); !bytes.Equal(got, f.plains[0]) {
		t.Fatalf("plaintext %q", got)
	}
	f.expect(t, 5, 0, url, "open", "-o", out+"2", f.envs[0])
}

// Two senders on one key and one database share one stream: 2,000
// envelopes (in-process, two stores drawing serials at once) and a few
// sealed by the binary (cliSenders), serials unique and increasing per
// sender; a recipient accepts them all.
func (f *fleet) testFleetSenders(t *testing.T) {
	_, url := f.database(t)
	kid, err := envelope.KeyIDOf(f.signer.Public())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[uint64]bool{}
	streams := map[uint64]bool{}
	var paths []string
	var wg sync.WaitGroup
	t.Setenv("PGPASSFILE", f.srv.PassFile)
	for host := 0; host < 2; host++ {
		st, err := postgres.Open(context.Background(), url, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := uint64(0)
			for i := 0; i < fleetEnvelopes; i++ {
				stream, serial, err := st.NextSerial(context.Background(), kid)
				if err != nil {
					t.Error(err)
					return
				}
				if serial <= last {
					t.Errorf("host %d: serial %d after %d", host, serial, last)
				}
				last = serial
				p := f.r.path(fmt.Sprintf("senders/h%d-%04d.tseal", host, i))
				f.seal(t, p, []byte(fmt.Sprint(serial)), stream, serial)
				mu.Lock()
				if seen[serial] {
					t.Errorf("serial %d issued twice", serial)
				}
				seen[serial], streams[stream] = true, true
				paths = append(paths, p)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != 2*fleetEnvelopes || len(streams) != 1 {
		t.Fatalf("%d serials in %d streams", len(seen), len(streams))
	}
	f.cliSenders(t, url)
	// A recipient with its own state directory accepts every envelope.
	outDir := f.r.path("senders-out")
	os.Mkdir(outDir, 0o700)
	f.r.expect(0, f.r.recv, "trust", "add", "fleet", f.sender)
	f.r.expect(0, f.r.recv, append([]string{"open", "-o", outDir}, paths...)...)
	if n, _ := os.ReadDir(outDir); len(n) != 2*fleetEnvelopes {
		t.Fatalf("%d outputs", len(n))
	}
}

// cliSenders seals with the binary from two hosts (token copies of the
// signing key "me") sharing the database url at once: serials unique,
// increasing per host, one stream.
func (f *fleet) cliSenders(t *testing.T, url string) {
	var mu sync.Mutex
	var cli [2][]uint64
	var cliStreams = map[uint64]bool{}
	var swg sync.WaitGroup
	for host := 0; host < 2; host++ {
		swg.Add(1)
		go func() {
			defer swg.Done()
			for i := 0; i < 5; i++ {
				p := f.r.path(fmt.Sprintf("senders/cli-%d-%d.tseal", host, i))
				if res := f.run(t, host*fleetOpeners, url, "seal", "--sign-with", "me", "-r", f.r.path("bob.pem"), "-o", p, f.r.path("bob.pem")); res.code != 0 {
					t.Errorf("seal: exit %d: %s", res.code, res.stderr)
					return
				}
				s, err := peekSender(p)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				cli[host] = append(cli[host], s.Serial)
				cliStreams[s.StreamID] = true
				mu.Unlock()
			}
		}()
	}
	swg.Wait()
	all := map[uint64]bool{}
	for host, serials := range cli {
		for i, s := range serials {
			if all[s] || (i > 0 && s <= serials[i-1]) {
				t.Fatalf("host %d: serials %v (other host %v)", host, serials, cli[1-host])
			}
			all[s] = true
		}
	}
	if len(all) != 10 || len(cliStreams) != 1 {
		t.Fatalf("binary: %d serials in %d streams", len(all), len(cliStreams))
	}
}

func peekSender(p string) (*envelope.SenderInfo, error) {
	fh, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	info, err := envelope.Inspect(fh)
	if err != nil {
		return nil, err
	}
	return info.Sender, nil
}

// A host's state directory copied into the shared database: what it
// accepted stays accepted fleet-wide; migrate on an empty database makes
// the schema.
func (f *fleet) testCopyAndMigrate(t *testing.T) {
	db := f.srv.NewDatabase(t)
	url := f.srv.URL(db)
	if res := f.expect(t, 0, 0, url, "state", "migrate"); !strings.Contains(res.stdout, "created, schema version 2") {
		t.Fatalf("migrate: %s", res.stdout)
	}
	host := f.r.path("single-host")
	f.r.expect(0, host, "trust", "add", "alice", f.sender)
	out := f.r.path("single-out")
	os.Mkdir(out, 0o700)
	f.r.expect(0, host, append([]string{"open", "-o", out}, f.envs[:10]...)...)
	res := f.expect(t, 0, 0, url, "state", "copy", "--from", host, "--to", url)
	if !strings.Contains(res.stdout, "1 trusted sender(s) added") || !strings.Contains(res.stdout, "10 accepted envelope(s)") {
		t.Fatalf("copy: %s", res.stdout)
	}
	out2 := f.r.path("fleet-out")
	os.Mkdir(out2, 0o700)
	res = f.run(t, 1, url, append([]string{"open", "-o", out2}, f.envs[:11]...)...)
	if res.code != 5 || strings.Count(res.stderr, "replayed envelope") != 10 {
		t.Fatalf("after the copy: exit %d: %s", res.code, res.stderr)
	}
	if n, _ := os.ReadDir(out2); len(n) != 1 {
		t.Fatalf("%d outputs after the copy, want 1", len(n))
	}
}
