package receive

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io"
	"testing"

	"github.com/tokenseal/tokenseal/envelope"
)

// countingIdentity counts the unwraps of the identity it wraps.
type countingIdentity struct {
	envelope.Identity
	n int
}

func (c *countingIdentity) Unwrap(s []*envelope.Stanza) ([]byte, error) {
	c.n++
	return c.Identity.Unwrap(s)
}

// The memo opens the same envelope again without its identities; another
// envelope to the same key is refused, and so is everything once it is
// wiped or before it remembered anything.
func TestMemo(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	to, _ := envelope.NewRecipient(k.Public(), 0)
	soft, _ := envelope.NewSoftwareIdentity(k)
	id := &countingIdentity{Identity: soft}
	plain := make([]byte, 100000)
	rand.Read(plain)
	seal := func() []byte {
		var buf bytes.Buffer
		w, _ := envelope.Seal(&buf, []envelope.Recipient{to}, nil)
		w.Write(plain)
		w.Close()
		return buf.Bytes()
	}
	env, other := seal(), seal()
	open := func(m *memo, env []byte) ([]byte, error) {
		r, err := envelope.Open(bytes.NewReader(env), []envelope.Identity{m}, nil)
		if err != nil {
			return nil, err
		}
		return io.ReadAll(r)
	}

	m := &memo{ids: []envelope.Identity{id}, replay: true}
	if _, err := open(m, env); !errors.As(err, new(*envelope.NoIdentityMatchError)) {
		t.Fatalf("replay with nothing remembered: %v", err)
	}
	m.replay = false
	if got, err := open(m, env); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("first pass: %v", err)
	}
	m.replay = true
	if got, err := open(m, env); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("second pass: %v", err)
	}
	if id.n != 1 {
		t.Fatalf("%d unwraps by the identity, want 1", id.n)
	}
	if _, err := open(m, other); !errors.As(err, new(*envelope.NoIdentityMatchError)) {
		t.Fatalf("another envelope to the same key: %v", err)
	}
	m.wipe()
	if _, err := open(m, env); !errors.Is(err, envelope.ErrRejected) {
		t.Fatalf("after wipe: %v", err)
	}
	if id.n != 1 {
		t.Fatalf("%d unwraps by the identity, want 1", id.n)
	}
}
