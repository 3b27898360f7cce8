package envelope_test

// The test vectors in testdata/vectors (written by
// ./internal/vectorgen from FORMAT.md, with fixed keys) checked against
// Open and against the independent decoder, internal/reference.

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenseal/tokenseal/envelope"
	ref "github.com/tokenseal/tokenseal/internal/reference"
)

// Expectations a vector can state (see ./internal/vectorgen).
const (
	expSuccess   = "success"
	expHeader    = "header failure"
	expArmor     = "armor failure"
	expNoMatch   = "no match"
	expUnwrap    = "unwrap failure"
	expMAC       = "header MAC failure"
	expPayload   = "payload failure"
	expSignature = "signature failure"
	expUntrusted = "untrusted sender"
)

// errCategory sorts an error from Open or from reading its Reader into
// the expectations of the vectors. An error that fits none is returned
// as "other: ..." and never matches.
func errCategory(err error) string {
	var pe *envelope.ParseError
	switch {
	case err == nil:
		return expSuccess
	case errors.As(err, new(*envelope.UnknownSenderError)):
		return expUntrusted
	case errors.As(err, new(*envelope.NoIdentityMatchError)):
		return expNoMatch
	case errors.Is(err, envelope.ErrHeaderAuth):
		return expMAC
	case errors.Is(err, envelope.ErrPayloadAuth):
		return expPayload
	case errors.Is(err, envelope.ErrSignature):
		return expSignature
	case errors.As(err, &pe):
		if strings.HasPrefix(pe.What, "armor") {
			return expArmor
		}
		return expHeader
	case errors.Is(err, envelope.ErrUnwrap):
		return expUnwrap
	case errors.Is(err, envelope.ErrRejected) && strings.Contains(err.Error(), "RSA-OAEP stanza names unknown digest"):
		return expUnwrap
	case errors.Is(err, envelope.ErrRejected) && strings.Contains(err.Error(), "signature trailer is incomplete"):
		return expPayload
	}
	return "other: " + err.Error()
}

type vectorFile struct {
	name    string
	expect  string
	payload []byte // SHA-256 of the plaintext
	privs   []crypto.PrivateKey
	senders []crypto.PublicKey
	comment string
	data    []byte
}

func parseVector(name string, b []byte) (*vectorFile, error) {
	v := &vectorFile{name: name}
	r := bufio.NewReader(bytes.NewReader(b))
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("header: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			break
		}
		key, value, ok := strings.Cut(line, ": ")
		if !ok {
			return nil, fmt.Errorf("malformed header line %q", line)
		}
		switch key {
		case "expect":
			v.expect = value
		case "payload":
			if v.payload, err = hex.DecodeString(value); err != nil || len(v.payload) != 32 {
				return nil, fmt.Errorf("payload: %q", value)
			}
		case "identity":
			der, err := base64.StdEncoding.DecodeString(value)
			if err != nil {
				return nil, err
			}
			k, err := x509.ParsePKCS8PrivateKey(der)
			if err != nil {
				return nil, err
			}
			v.privs = append(v.privs, k)
		case "sender":
			der, err := base64.StdEncoding.DecodeString(value)
			if err != nil {
				return nil, err
			}
			k, err := x509.ParsePKIXPublicKey(der)
			if err != nil {
				return nil, err
			}
			v.senders = append(v.senders, k)
		case "comment":
			v.comment = value
		default:
			return nil, fmt.Errorf("unknown header %q", key)
		}
	}
	v.data, _ = io.ReadAll(r)
	switch {
	case v.expect == "":
		return nil, errors.New("no expect line")
	case v.comment == "":
		return nil, errors.New("no comment line")
	case len(v.privs) == 0:
		return nil, errors.New("no identity line")
	case v.expect == expSuccess && v.payload == nil:
		return nil, errors.New("success without a payload line")
	}
	return v, nil
}

// trustingKeys is OpenOptions that trusts exactly pubs and accepts
// anonymous envelopes.
func trustingKeys(pubs []crypto.PublicKey) *envelope.OpenOptions {
	return &envelope.OpenOptions{Senders: func(id envelope.KeyID) (crypto.PublicKey, error) {
		for _, p := range pubs {
			if k, _ := envelope.KeyIDOf(p); k == id {
				return p, nil
			}
		}
		return nil, envelope.ErrUnknownSender
	}}
}

func softwareIdentities(t testing.TB, privs []crypto.PrivateKey) []envelope.Identity {
	t.Helper()
	var ids []envelope.Identity
	for _, p := range privs {
		id, err := envelope.NewSoftwareIdentity(p)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// openAll opens env and reads it to the end, with Read (in pieces of
// uneven sizes) or with WriteTo. It returns what the Reader released and
// the first error (nil when the Reader reached io.EOF).
func openAll(env []byte, ids []envelope.Identity, opts *envelope.OpenOptions, writeTo bool) (released []byte, err error) {
	r, err := envelope.Open(bytes.NewReader(env), ids, opts)
	if err != nil {
		return nil, err
	}
	if writeTo {
		var buf bytes.Buffer
		_, err := r.WriteTo(&buf)
		return buf.Bytes(), err
	}
	var out []byte
	sizes := []int{1, 4096, 65536, 7, 100000}
	for i := 0; ; i++ {
		buf := make([]byte, sizes[i%len(sizes)])
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func TestVectors(t *testing.T) {
	files, err := filepath.Glob("testdata/vectors/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 100 {
		t.Fatalf("found %d vectors in testdata/vectors; run go run ./envelope/internal/vectorgen", len(files))
	}
	counts := map[string]int{}
	accepted := 0
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".txt")
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			v, err := parseVector(name, b)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			counts[v.expect]++
			ids := softwareIdentities(t, v.privs)
			opts := trustingKeys(v.senders)
			for _, writeTo := range []bool{false, true} {
				pt, err := openAll(v.data, ids, opts, writeTo)
				if got := errCategory(err); got != v.expect {
					t.Errorf("WriteTo=%v: got %q (%v), want %q: %s", writeTo, got, err, v.expect, v.comment)
				}
				if err == nil {
					if v.expect != expSuccess {
						accepted++
					}
					if h := sha256.Sum256(pt); !bytes.Equal(h[:], v.payload) {
						t.Errorf("WriteTo=%v: plaintext hash %x, want %x", writeTo, h, v.payload)
					}
				} else if err := indepReleased(v.data, v.privs, pt, err); err != nil {
					t.Errorf("WriteTo=%v: %v", writeTo, err)
				}
			}
			// The independent decoder must agree.
			pt, err := ref.OpenSigned(v.data, v.privs, v.senders)
			if (err == nil) != (v.expect == expSuccess) {
				t.Errorf("independent decoder: err = %v, want %s: %s", err, v.expect, v.comment)
			} else if err == nil {
				if h := sha256.Sum256(pt); !bytes.Equal(h[:], v.payload) {
					t.Errorf("independent decoder: plaintext hash %x, want %x", h, v.payload)
				}
			}
			// And its reader of anonymous envelopes.
			if len(v.senders) == 0 && v.expect != expUntrusted {
				if _, err := ref.Open(v.data, v.privs...); (err == nil) != (v.expect == expSuccess) {
					t.Errorf("reference decoder of anonymous envelopes: err = %v, want %s", err, v.expect)
				}
			}
		})
	}
	if accepted > 0 {
		t.Errorf("%d invalid vectors were accepted", accepted)
	}
	t.Logf("%d vectors: %v", len(files), counts)
}

// indepReleased checks what a Reader gave out before failing with
// openErr on env. FORMAT.md section 5 lets a reader release a chunk once
// it authenticated, and the message is complete only after the final
// chunk authenticated and, for signed envelopes, the signature verified.
// So released must be either whole non-final chunks 0, 1, ... that
// authenticate under the envelope's payload key, or the whole
// authenticated plaintext of a signed envelope whose signature then
// failed.
func indepReleased(env []byte, privs []crypto.PrivateKey, released []byte, openErr error) error {
	if len(released) == 0 {
		return nil
	}
	bin := env
	if bytes.HasPrefix(env, []byte(ref.ArmorBegin)) {
		// The armor may be broken further on: decode the good prefix.
		bin = ref.DearmorPrefix(env)
	}
	h, rest, err := ref.Parse(bin)
	if err != nil {
		return fmt.Errorf("plaintext released from an envelope whose header is malformed: %v", err)
	}
	kp, err := ref.Keys(h, privs)
	if err != nil {
		return fmt.Errorf("plaintext released, but no file key or no header MAC: %v", err)
	}
	if n := h.TrailerLen(); h.Sender != nil && len(rest) >= n {
		full, err := ref.DecryptPayload(kp, rest[:len(rest)-n])
		if err == nil && bytes.Equal(full, released) {
			if !errors.Is(openErr, envelope.ErrSignature) {
				return fmt.Errorf("the whole plaintext was released, then %v", openErr)
			}
			return nil
		}
	}
	if len(released)%ref.ChunkSize != 0 {
		return fmt.Errorf("%d bytes released before %v: not whole chunks", len(released), openErr)
	}
	aead := ref.GCM(kp)
	for i := 0; len(released) > 0; i++ {
		if len(rest) < ref.ChunkWire {
			return fmt.Errorf("chunk %d released but not in the input", i)
		}
		pt, err := aead.Open(nil, ref.Nonce(uint64(i), false), rest[:ref.ChunkWire], nil)
		if err != nil || !bytes.Equal(pt, released[:ref.ChunkSize]) {
			return fmt.Errorf("released chunk %d is not an authenticated non-final chunk", i)
		}
		rest, released = rest[ref.ChunkWire:], released[ref.ChunkSize:]
	}
	return nil
}

// loadTestKey reads a fixed key from testdata/keys.
func loadTestKey(t testing.TB, name string) crypto.Signer {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "keys", name+".pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", name)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(crypto.Signer)
}
