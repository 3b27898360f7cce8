package envelope_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/tokenseal/tokenseal/envelope"
)

type testKey struct {
	name string
	priv crypto.Signer
	hash crypto.Hash
}

var (
	keysOnce sync.Once
	keys     []testKey
)

func testKeys(t testing.TB) []testKey {
	keysOnce.Do(func() {
		r, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		keys = []testKey{
			{"rsa-sha1", r, crypto.SHA1},
			{"rsa-sha256", r, crypto.SHA256},
			{"p256", p256, 0},
			{"p384", p384, 0},
		}
	})
	return keys
}

func recipient(t testing.TB, k testKey) envelope.Recipient {
	t.Helper()
	r, err := envelope.NewRecipient(k.priv.Public(), k.hash)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func identity(t testing.TB, k testKey) envelope.Identity {
	t.Helper()
	id, err := envelope.NewSoftwareIdentity(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// seal seals plain anonymously (see sealSigned).
func seal(t testing.TB, plain []byte, armor bool, rs ...envelope.Recipient) []byte {
	t.Helper()
	return sealSigned(t, plain, armor, nil, rs...)
}

func open(env []byte, ids ...envelope.Identity) ([]byte, error) {
	r, err := envelope.Open(bytes.NewReader(env), ids, nil)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func TestRoundTrip(t *testing.T) {
	sizes := []int{0, 1, 100, 65535, 65536, 65537, 2*65536 - 1, 2 * 65536, 3*65536 + 7, 5 << 20}
	for _, k := range testKeys(t) {
		for _, armor := range []bool{false, true} {
			for _, n := range sizes {
				t.Run(fmt.Sprintf("%s/armor=%v/%d", k.name, armor, n), func(t *testing.T) {
					plain := make([]byte, n)
					rand.Read(plain)
					env := seal(t, plain, armor, recipient(t, k))
					got, err := open(env, identity(t, k))
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, plain) {
						t.Fatal("plaintext mismatch")
					}
				})
			}
		}
	}
}

// Writing in odd pieces gives the same stream as one write.
func TestSmallWrites(t *testing.T) {
	k := testKeys(t)[2]
	plain := make([]byte, 3*65536+5)
	rand.Read(plain)
	var buf bytes.Buffer
	w, err := envelope.Seal(&buf, []envelope.Recipient{recipient(t, k)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for p := plain; len(p) > 0; {
		n := min(len(p), 1+len(p)%4099)
		w.Write(p[:n])
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := open(buf.Bytes(), identity(t, k))
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("round trip failed: %v", err)
	}
}

func TestMultiRecipient(t *testing.T) {
	ks := testKeys(t)
	var rs []envelope.Recipient
	for _, k := range ks[1:] {
		rs = append(rs, recipient(t, k))
	}
	plain := []byte("to several recipients")
	env := seal(t, plain, false, rs...)
	for _, k := range ks[1:] {
		got, err := open(env, identity(t, k))
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%s: %v", k.name, err)
		}
	}
}

func TestNotAddressed(t *testing.T) {
	ks := testKeys(t)
	env := seal(t, []byte("x"), false, recipient(t, ks[2]))
	_, err := open(env, identity(t, ks[1]), identity(t, ks[3]))
	var nm *envelope.NoIdentityMatchError
	if !errors.As(err, &nm) || !errors.Is(err, envelope.ErrRejected) {
		t.Fatalf("err = %v, want NoIdentityMatchError", err)
	}
	want, _ := envelope.KeyIDOf(ks[2].priv.Public())
	if len(nm.KeyIDs) != 1 || nm.KeyIDs[0] != want {
		t.Fatalf("KeyIDs = %v, want [%v]", nm.KeyIDs, want)
	}
}

// The refusal of an envelope addressed to many keys, none here, is one
// bounded line: the first few key ids, then how many more. Before the
// fix 4,096 stanzas made an error of 266 KB.
func TestNotAddressedBounded(t *testing.T) {
	rs := make([]envelope.Recipient, 4096)
	for i := range rs {
		rs[i] = fixedRecipient{id: envelope.KeyID{byte(i >> 8), byte(i), 1}}
	}
	env := seal(t, []byte("x"), false, rs...)
	_, err := open(env, identity(t, testKeys(t)[2]))
	var nm *envelope.NoIdentityMatchError
	if !errors.As(err, &nm) || len(nm.KeyIDs) != 4096 {
		t.Fatalf("err = %v", err)
	}
	msg := err.Error()
	if len(msg) > 400 || strings.Contains(msg, "\n") || !strings.HasSuffix(msg, ", and 4092 more") || !strings.Contains(msg, nm.KeyIDs[0].String()) {
		t.Fatalf("message of %d bytes: %.500s", len(msg), msg)
	}
}

// fixedRecipient writes a stanza of an unknown type for a made-up key id.
type fixedRecipient struct{ id envelope.KeyID }

func (r fixedRecipient) Wrap([]byte) (*envelope.Stanza, error) {
	return &envelope.Stanza{Type: 0x7f, KeyID: r.id}, nil
}

// Every single-byte change and every truncation of a small envelope is
// refused with an error that wraps ErrRejected, and no plaintext comes out.
func TestTamperAndTruncate(t *testing.T) {
	for _, k := range testKeys(t) {
		for _, armor := range []bool{false, true} {
			env := seal(t, []byte("attack at dawn"), armor, recipient(t, k))
			id := identity(t, k)
			for i := range env {
				bad := bytes.Clone(env)
				bad[i] ^= 0x01
				if got, err := open(bad, id); !errors.Is(err, envelope.ErrRejected) || len(got) != 0 {
					t.Fatalf("%s armor=%v: flip at %d: got %q, %v", k.name, armor, i, got, err)
				}
			}
			for n := 0; n < len(env); n++ {
				if got, err := open(env[:n], id); !errors.Is(err, envelope.ErrRejected) || len(got) != 0 {
					t.Fatalf("%s armor=%v: truncation to %d: got %q, %v", k.name, armor, n, got, err)
				}
			}
			if _, err := open(append(bytes.Clone(env), 0), id); !errors.Is(err, envelope.ErrRejected) {
				t.Fatalf("%s armor=%v: appended byte: %v", k.name, armor, err)
			}
		}
	}
}

// Chunks swapped, dropped or duplicated, and truncation at chunk edges.
func TestChunkSurgery(t *testing.T) {
	k := testKeys(t)[2]
	id := identity(t, k)
	plain := make([]byte, 3*65536+100)
	rand.Read(plain)
	env := seal(t, plain, false, recipient(t, k))
	const enc = 65536 + 16
	hdr := len(env) - (3*enc + 100 + 16)
	chunk := func(i int) []byte {
		end := min(hdr+(i+1)*enc, len(env))
		return env[hdr+i*enc : end]
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	h := env[:hdr]
	cases := map[string][]byte{
		"swap 0 1":       cat(h, chunk(1), chunk(0), chunk(2), chunk(3)),
		"drop 1":         cat(h, chunk(0), chunk(2), chunk(3)),
		"duplicate 1":    cat(h, chunk(0), chunk(1), chunk(1), chunk(2), chunk(3)),
		"drop last":      cat(h, chunk(0), chunk(1), chunk(2)),
		"last twice":     cat(h, chunk(0), chunk(1), chunk(2), chunk(3), chunk(3)),
		"no payload":     cat(h),
		"edge-1":         env[:hdr+enc-1],
		"edge":           env[:hdr+enc],
		"edge+1":         env[:hdr+enc+1],
		"appended chunk": cat(env, chunk(0)),
	}
	for name, bad := range cases {
		r, err := envelope.Open(bytes.NewReader(bad), []envelope.Identity{id}, nil)
		if err != nil {
			t.Fatalf("%s: header refused: %v", name, err)
		}
		got, err := io.ReadAll(r)
		if !errors.Is(err, envelope.ErrPayloadAuth) {
			t.Errorf("%s: err = %v, want ErrPayloadAuth", name, err)
		}
		// Chunks before the damage may be released; nothing after.
		if !bytes.HasPrefix(plain, got) {
			t.Errorf("%s: released data that is not a prefix of the plaintext", name)
		}
		// Errors are sticky.
		if _, err2 := r.Read(make([]byte, 1)); err2 != err {
			t.Errorf("%s: second read returned %v, want %v", name, err2, err)
		}
	}
}

// Two envelopes to the same key: the header of one with the payload of the
// other must fail (payload keys are per envelope).
func TestSpliceHeaders(t *testing.T) {
	k := testKeys(t)[3]
	a := seal(t, []byte("first message"), false, recipient(t, k))
	b := seal(t, []byte("second message"), false, recipient(t, k))
	hdr := len(a) - (len("first message") + 16)
	spliced := append(bytes.Clone(a[:hdr]), b[hdr:]...)
	if _, err := open(spliced, identity(t, k)); !errors.Is(err, envelope.ErrPayloadAuth) {
		t.Fatalf("err = %v", err)
	}
}

func TestParseRecipientFile(t *testing.T) {
	k := testKeys(t)[0]
	pemKey := pemPublic(t, k.priv.Public())
	id, _ := envelope.KeyIDOf(k.priv.Public())
	for _, tc := range []struct {
		name string
		data string
		hash crypto.Hash
		err  bool
	}{
		{"bare", pemKey, crypto.SHA256, false},
		{"sha1", "# tokenseal recipient\n# key-id: " + id.String() + "\n# oaep-hash: sha1\n" + pemKey, crypto.SHA1, false},
		{"bad id", "# key-id: 00\n" + pemKey, 0, true},
		{"bad hash", "# oaep-hash: md5\n" + pemKey, 0, true},
		{"two blocks", pemKey + pemKey, 0, true},
		{"garbage", "hello", 0, true},
	} {
		r, err := envelope.ParseRecipient([]byte(tc.data))
		if tc.err {
			if err == nil {
				t.Errorf("%s: no error", tc.name)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		// The OAEP digest the recipient uses is the stanza's first byte
		// (FORMAT.md, section 4.1: 1 SHA-1, 2 SHA-256).
		st, err := r.Wrap(make([]byte, 32))
		if err != nil {
			t.Fatal(err)
		}
		if h := map[byte]crypto.Hash{1: crypto.SHA1, 2: crypto.SHA256}[st.Body[0]]; h != tc.hash || st.KeyID != id {
			t.Errorf("%s: hash %v, key %s; want %v, %s", tc.name, h, st.KeyID, tc.hash, id)
		}
	}
}

// io.Copy takes the pipelined paths (ReadFrom, WriteTo); they give the
// same envelope and plaintext as Write and Read, and refuse the same
// damage.
func TestPipelinedPaths(t *testing.T) {
	for _, k := range testKeys(t)[1:3] {
		for _, n := range []int{0, 1, 65536, 65537, 3 << 20} {
			plain := make([]byte, n)
			rand.Read(plain)
			var buf bytes.Buffer
			w, err := envelope.Seal(&buf, []envelope.Recipient{recipient(t, k)}, &envelope.SealOptions{Armor: n%2 == 1})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.(io.ReaderFrom).ReadFrom(bytes.NewReader(plain)); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			r, err := envelope.Open(bytes.NewReader(buf.Bytes()), []envelope.Identity{identity(t, k)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if _, err := r.WriteTo(&out); err != nil || !bytes.Equal(out.Bytes(), plain) {
				t.Fatalf("%s n=%d: %v", k.name, n, err)
			}
			if n > 0 {
				bad := bytes.Clone(buf.Bytes())
				bad[len(bad)-2] ^= 1
				r, err := envelope.Open(bytes.NewReader(bad), []envelope.Identity{identity(t, k)}, nil)
				if err == nil {
					_, err = r.WriteTo(io.Discard)
				}
				if !errors.Is(err, envelope.ErrRejected) {
					t.Fatalf("%s n=%d tampered: %v", k.name, n, err)
				}
			}
		}
	}
}
