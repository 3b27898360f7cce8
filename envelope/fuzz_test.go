package envelope_test

// Fuzz targets for Open and for the key-wrapping layer, with fixed
// software keys from testdata/keys. The checked-in seed corpora under
// testdata/fuzz/<FuzzName> are written by ./internal/vectorgen (the
// "vec-" files) and by `go test -fuzz` (crashers); `make fuzz` runs every
// target for FUZZTIME, plain `go test` runs the seeds.

import (
	"bytes"
	"crypto"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	ref "github.com/tokenseal/tokenseal/internal/reference"
)

// fuzzKeys are the reader's keys in FuzzOpen: a P-256 and an RSA
// exchange key, and two trusted senders (ECDSA P-256 and RSA-PSS).
type fuzzKeySet struct {
	privs   []crypto.PrivateKey
	ids     []envelope.Identity
	senders []crypto.PublicKey
	signers map[string]crypto.Signer
	opts    *envelope.OpenOptions
}

var (
	fuzzKeysOnce sync.Once
	fuzzKeysVal  *fuzzKeySet
)

func fuzzKeys(t testing.TB) *fuzzKeySet {
	fuzzKeysOnce.Do(func() {
		k := &fuzzKeySet{signers: map[string]crypto.Signer{}}
		for _, n := range []string{"p256-a", "rsa2048-a", "p384-a", "p256-sign", "rsa2048-sign"} {
			k.signers[n] = loadTestKey(t, n)
		}
		k.privs = []crypto.PrivateKey{k.signers["p256-a"], k.signers["rsa2048-a"]}
		k.ids = softwareIdentities(t, k.privs)
		k.senders = []crypto.PublicKey{k.signers["p256-sign"].Public(), k.signers["rsa2048-sign"].Public()}
		k.opts = trustingKeys(k.senders)
		fuzzKeysVal = k
	})
	if fuzzKeysVal == nil {
		t.Fatal("fixed keys did not load")
	}
	return fuzzKeysVal
}

// sealFixed seals plain to the fixed recipient key (RSA with SHA-256),
// signed by signer unless it is "".
func sealFixed(t testing.TB, k *fuzzKeySet, recip, signer string, armor bool, plain []byte) []byte {
	t.Helper()
	r, err := envelope.NewRecipient(k.signers[recip].Public(), crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	opts := &envelope.SealOptions{Armor: armor}
	if signer != "" {
		opts.Sender = &envelope.Sender{Signer: k.signers[signer], StreamID: 7, Serial: 1, Time: time.Unix(1767225600, 0)}
	}
	var buf bytes.Buffer
	w, err := envelope.Seal(&buf, []envelope.Recipient{r}, opts)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzOpen opens arbitrary bytes with fixed keys, through Read and
// through WriteTo, and checks against the independent decoder that:
// nothing panics; an envelope is accepted (the Reader reaches io.EOF)
// exactly when the independent decoder accepts it, with the same
// plaintext; every refusal is an envelope rejection (exit 4 in the CLI);
// and whatever the Reader released before failing is authenticated
// whole chunks (see indepReleased).
func FuzzOpen(f *testing.F) {
	k := fuzzKeys(f)
	// The checked-in corpus holds the small vectors; large inputs stall
	// the fuzzing engine (golang/go#51484 shows the symptom: 0 execs/sec),
	// so multi-chunk envelopes are FuzzMutate's.
	f.Add(sealFixed(f, k, "p256-a", "", true, []byte("seed")))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkOpen(t, k, data)
	})
}

// mutationBase are the multi-chunk envelopes FuzzMutate changes: sizes
// around the chunk edges, binary and armored, anonymous and signed, to
// either fixed identity.
var (
	mutationOnce sync.Once
	mutationBase [][]byte
)

func mutationEnvelopes(t testing.TB, k *fuzzKeySet) [][]byte {
	mutationOnce.Do(func() {
		for i, c := range []struct {
			recip, signer string
			armor         bool
			n             int
		}{
			{"p256-a", "", false, 65535},
			{"p256-a", "p256-sign", false, 65536},
			{"rsa2048-a", "", false, 65537},
			{"p256-a", "rsa2048-sign", false, 2*65536 + 17},
			{"rsa2048-a", "p256-sign", true, 65536},
			{"p256-a", "", true, 2 * 65536},
		} {
			plain := bytes.Repeat([]byte{byte(i + 1)}, c.n)
			mutationBase = append(mutationBase, sealFixed(t, k, c.recip, c.signer, c.armor, plain))
		}
	})
	return mutationBase
}

// FuzzMutate makes structured changes to multi-chunk envelopes (bit
// flips, truncations, insertions, deletions, chunks swapped, duplicated
// or dropped, bytes appended) chosen by small fuzzed parameters, and
// checks the result as FuzzOpen does. Its inputs stay small however
// large the envelopes are.
func FuzzMutate(f *testing.F) {
	k := fuzzKeys(f)
	base := mutationEnvelopes(f, k)
	for op := range uint8(9) {
		f.Add(uint8(op), uint8(op), uint32(65552*int(op)+100), uint32(op)*977, []byte{0x80})
	}
	f.Fuzz(func(t *testing.T, which, op uint8, a, b uint32, x []byte) {
		env := bytes.Clone(base[int(which)%len(base)])
		data := mutate(env, op, int(a), int(b), x)
		checkOpen(t, k, data)
	})
}

// mutate applies one change to env. Chunk operations work on 65552-byte
// blocks counted from the end of the header (the binary form only).
func mutate(env []byte, op uint8, a, b int, x []byte) []byte {
	n := len(env)
	const block = 65552
	hdr := 0
	if n > 13 && string(env[:9]) == "tokenseal" {
		hdr = 13 + (int(env[10])<<16 | int(env[11])<<8 | int(env[12])) + 32
	}
	blocks := (n - hdr) / block
	switch op % 9 {
	case 0: // flip bits
		env[a%n] ^= byte(b) | 1
	case 1: // truncate
		env = env[:a%n]
	case 2: // insert
		env = append(env[:a%n], append(bytes.Clone(x), env[a%n:]...)...)
	case 3: // delete a range
		i := a % n
		j := min(n, i+1+b%200)
		env = append(env[:i], env[j:]...)
	case 4: // overwrite with x
		copy(env[a%n:], x)
	case 5: // append
		env = append(env, x...)
	case 6: // swap two chunks
		if blocks >= 2 && hdr > 0 {
			i, j := a%blocks, b%blocks
			if i == j {
				j = (i + 1) % blocks
			}
			ci := bytes.Clone(env[hdr+i*block : hdr+(i+1)*block])
			copy(env[hdr+i*block:], env[hdr+j*block:hdr+(j+1)*block])
			copy(env[hdr+j*block:], ci)
		}
	case 7: // duplicate a chunk
		if blocks >= 1 && hdr > 0 {
			i := hdr + (a%blocks)*block
			env = append(env[:i], append(bytes.Clone(env[i:i+block]), env[i:]...)...)
		}
	case 8: // drop a chunk
		if blocks >= 1 && hdr > 0 {
			i := hdr + (a%blocks)*block
			env = append(env[:i], env[i+block:]...)
		}
	}
	return env
}

func checkOpen(t *testing.T, k *fuzzKeySet, data []byte) {
	want, wantErr := ref.OpenSigned(data, k.privs, k.senders)
	for _, writeTo := range []bool{false, true} {
		got, err := openAll(data, k.ids, k.opts, writeTo)
		switch {
		case err == nil && wantErr != nil:
			t.Fatalf("WriteTo=%v: accepted an envelope the independent decoder refuses: %v", writeTo, wantErr)
		case err == nil && !bytes.Equal(got, want):
			t.Fatalf("WriteTo=%v: accepted with a different plaintext (%d bytes, want %d)", writeTo, len(got), len(want))
		case err != nil && wantErr == nil:
			t.Fatalf("WriteTo=%v: refused an envelope the independent decoder accepts: %v", writeTo, err)
		case err != nil && !errors.Is(err, envelope.ErrRejected):
			t.Fatalf("WriteTo=%v: refused with an error that is not a rejection: %v", writeTo, err)
		case err != nil:
			if rerr := indepReleased(data, k.privs, got, err); rerr != nil {
				t.Fatalf("WriteTo=%v: %v", writeTo, rerr)
			}
		}
	}
}

// FuzzStanza offers one stanza, of any type and body, addressed to each
// fixed identity's key id, and checks the result against the independent
// decoder's TryStanza: no panic, a file key only when the
// independent decoder also unwraps one (the same), and every failure a
// rejection.
func FuzzStanza(f *testing.F) {
	k := fuzzKeys(f)
	privs := []crypto.PrivateKey{k.signers["p256-a"], k.signers["p384-a"], k.signers["rsa2048-a"]}
	ids := softwareIdentities(f, privs)
	keyIDs := make([]envelope.KeyID, len(privs))
	for i, p := range privs {
		id, err := envelope.KeyIDOf(p.(crypto.Signer).Public())
		if err != nil {
			f.Fatal(err)
		}
		keyIDs[i] = id
	}
	f.Add(byte(2), make([]byte, 105))
	f.Fuzz(func(t *testing.T, typ byte, body []byte) {
		for i, id := range ids {
			s := &envelope.Stanza{Type: typ, KeyID: keyIDs[i], Body: body}
			fk, err := id.Unwrap([]*envelope.Stanza{s})
			matched, want, wantErr := ref.TryStanza(ref.Stanza{Type: typ, KeyID: keyIDs[i][:], Body: body}, privs[i])
			switch {
			case !matched:
				if !errors.Is(err, envelope.ErrIncorrectIdentity) {
					t.Fatalf("key %d, type %d: want ErrIncorrectIdentity, got %v", i, typ, err)
				}
			case err == nil && wantErr != nil:
				t.Fatalf("key %d: unwrapped a stanza the independent decoder refuses: %v", i, wantErr)
			case err == nil && !bytes.Equal(fk, want):
				t.Fatalf("key %d: unwrapped a different file key", i)
			case err != nil && wantErr == nil:
				t.Fatalf("key %d: refused a stanza the independent decoder unwraps: %v", i, err)
			case err != nil && !errors.Is(err, envelope.ErrRejected):
				t.Fatalf("key %d: refused with an error that is not a rejection: %v", i, err)
			}
		}
	})
}

// TestFuzzSeedCorpora fails when a fuzz target of this package has no
// checked-in seed corpus where `go test` looks for it, or a corpus
// directory belongs to no target (a renamed target silently losing its
// seeds).
func TestFuzzSeedCorpora(t *testing.T) {
	checkSeedCorpora(t, 2)
}

// checkSeedCorpora finds the Fuzz functions in the package's test files
// and counts each one's files in testdata/fuzz/<FuzzName>.
func checkSeedCorpora(t *testing.T, atLeast int) {
	t.Helper()
	files, _ := filepath.Glob("*_test.go")
	targets := map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range af.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && strings.HasPrefix(fd.Name.Name, "Fuzz") {
				targets[fd.Name.Name] = true
			}
		}
	}
	if len(targets) < atLeast {
		t.Fatalf("found %d fuzz targets, want at least %d", len(targets), atLeast)
	}
	for name := range targets {
		entries, err := os.ReadDir(filepath.Join("testdata", "fuzz", name))
		if err != nil {
			t.Errorf("%s: no seed corpus: %v", name, err)
			continue
		}
		n := 0
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join("testdata", "fuzz", name, e.Name()))
			if err != nil || !bytes.HasPrefix(b, []byte("go test fuzz v1\n")) {
				t.Errorf("%s/%s: not a corpus file", name, e.Name())
				continue
			}
			n++
		}
		if n == 0 {
			t.Errorf("%s: seed corpus testdata/fuzz/%s is empty", name, name)
		}
		t.Logf("%s: %d seed files", name, n)
	}
	dirs, _ := os.ReadDir(filepath.Join("testdata", "fuzz"))
	for _, d := range dirs {
		if !targets[d.Name()] {
			t.Errorf("testdata/fuzz/%s belongs to no fuzz target", d.Name())
		}
	}
}

// allocated returns the bytes f allocates (on this goroutine and any it
// starts), as TotalAlloc sees them.
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// endless yields b forever.
type endless struct{ b byte }

func (e endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = e.b
	}
	return len(p), nil
}

// Length fields are capped before anything is allocated: a header that
// claims 16 MiB, stanza and extension lists that claim more than their
// body, an endless armor line, and endless payload are refused with a
// bounded allocation, well below what they claim.
func TestOpenLengthCaps(t *testing.T) {
	k := fuzzKeys(t)
	good := sealFixed(t, k, "p256-a", "", false, []byte("x"))
	hdrLen := 13 + (int(good[10])<<16 | int(good[11])<<8 | int(good[12])) + 32
	body := good[13 : hdrLen-32]

	rebuild := func(body []byte) []byte {
		h := append([]byte("tokenseal\x01"), byte(len(body)>>16), byte(len(body)>>8), byte(len(body)))
		h = append(h, body...)
		return append(h, make([]byte, 32)...) // MAC: never reached
	}
	stanzasLen := 1 + 32 // chunk_log2, salt: then the u24 stanza-list length
	cases := []struct {
		name  string
		src   io.Reader
		limit uint64
	}{
		{"body length 16 MiB - 1", io.MultiReader(strings.NewReader("tokenseal\x01\xff\xff\xff"), endless{0}), 1 << 20},
		{"body length 4 MiB + 1", io.MultiReader(strings.NewReader("tokenseal\x01\x40\x00\x01"), endless{0}), 1 << 20},
		{"stanza list 16 MiB - 1", bytes.NewReader(rebuild(append(append(bytes.Clone(body[:stanzasLen]), 0xff, 0xff, 0xff), body[stanzasLen+3:]...))), 1 << 20},
		{"stanza body 64 KiB - 1", bytes.NewReader(rebuild(func() []byte {
			b := bytes.Clone(body)
			b[stanzasLen+3+33], b[stanzasLen+3+34] = 0xff, 0xff
			return b
		}())), 1 << 20},
		{"extension list 64 KiB - 1", bytes.NewReader(rebuild(func() []byte {
			b := bytes.Clone(body)
			b[len(b)-2], b[len(b)-1] = 0xff, 0xff
			return b
		}())), 1 << 20},
		{"endless armor line", io.MultiReader(strings.NewReader("-----BEGIN TOKENSEAL ENVELOPE-----\n"), endless{'A'}), 1 << 20},
		{"endless armor lines", io.MultiReader(strings.NewReader("-----BEGIN TOKENSEAL ENVELOPE-----\n"), endless{'\n'}), 1 << 20},
		{"endless payload", io.MultiReader(bytes.NewReader(good[:hdrLen]), endless{0}), 2 << 20},
		{"endless signed payload", io.MultiReader(bytes.NewReader(func() []byte {
			s := sealFixed(t, k, "p256-a", "p256-sign", false, []byte("x"))
			return s[:13+(int(s[10])<<16|int(s[11])<<8|int(s[12]))+32]
		}()), endless{0}), 2 << 20},
	}
	for _, c := range cases {
		var err error
		n := allocated(func() {
			var r *envelope.Reader
			r, err = envelope.Open(c.src, k.ids, k.opts)
			if err == nil {
				_, err = io.Copy(io.Discard, io.LimitReader(r, 1<<30))
			}
		})
		if err == nil || !errors.Is(err, envelope.ErrRejected) {
			t.Errorf("%s: err = %v, want a rejection", c.name, err)
		}
		if n > c.limit {
			t.Errorf("%s: allocated %d bytes, limit %d", c.name, n, c.limit)
		}
		t.Logf("%s: %v; %d KiB allocated", c.name, err, n>>10)
	}
}
