package envelope_test

// The test vectors in testdata/vectors (written by
// ./internal/vectorgen from FORMAT.md, with fixed keys) checked against
// Open and against the independent decoder of spec_test.go, which
// indepOpen below extends to signed envelopes.

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenseal/tokenseal/envelope"
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
			pt, err := indepOpen(v.data, v.privs, v.senders)
			if (err == nil) != (v.expect == expSuccess) {
				t.Errorf("independent decoder: err = %v, want %s: %s", err, v.expect, v.comment)
			} else if err == nil {
				if h := sha256.Sum256(pt); !bytes.Equal(h[:], v.payload) {
					t.Errorf("independent decoder: plaintext hash %x, want %x", h, v.payload)
				}
			}
			// And spec_test.go's own decoder, for anonymous envelopes.
			if len(v.senders) == 0 && v.expect != expUntrusted {
				if _, err := specOpenKeys(v.data, v.privs); (err == nil) != (v.expect == expSuccess) {
					t.Errorf("spec decoder: err = %v, want %s", err, v.expect)
				}
			}
		})
	}
	if accepted > 0 {
		t.Errorf("%d invalid vectors were accepted", accepted)
	}
	t.Logf("%d vectors: %v", len(files), counts)
}

// ---------------------------------------------------------------------------
// indepOpen: the decoder of spec_test.go (written from FORMAT.md alone),
// extended with the sender extension and the signature of sections 2.3
// and 6, so that it opens signed envelopes too.
// ---------------------------------------------------------------------------

type indepSender struct {
	keyID  []byte
	alg    byte
	sigLen int
}

// indepParse parses the binary header (FORMAT.md section 2) and returns
// it, the sender extension if any, and what follows the header.
func indepParse(b []byte) (*specHeader, *indepSender, []byte, error) {
	if len(b) < 13 || !bytes.Equal(b[:9], specMagic) {
		return nil, nil, nil, errors.New("indep: not a tokenseal envelope")
	}
	if b[9] != specVersion {
		return nil, nil, nil, errors.New("indep: unknown version")
	}
	n := specU24(b[10:])
	if n > specMaxBody {
		return nil, nil, nil, errors.New("indep: body over 4 MiB")
	}
	if len(b) < 13+n+specMACSize {
		return nil, nil, nil, errors.New("indep: header truncated")
	}
	body := b[13 : 13+n]
	h := &specHeader{macInput: b[:13+n], mac: b[13+n : 13+n+specMACSize]}
	rest := b[13+n+specMACSize:]
	take := func(k int) ([]byte, bool) {
		if len(body) < k {
			return nil, false
		}
		out := body[:k]
		body = body[k:]
		return out, true
	}
	cl, ok := take(1)
	if !ok || cl[0] != specChunkLog2 {
		return nil, nil, nil, errors.New("indep: chunk_log2")
	}
	if h.salt, ok = take(32); !ok {
		return nil, nil, nil, errors.New("indep: salt")
	}
	l, ok := take(3)
	if !ok {
		return nil, nil, nil, errors.New("indep: stanza length")
	}
	st, ok := take(specU24(l))
	if !ok {
		return nil, nil, nil, errors.New("indep: stanzas run past the body")
	}
	seen := map[string]bool{}
	for len(st) > 0 {
		if len(st) < specStanzaHdr || len(st) < specStanzaHdr+specU16(st[33:]) {
			return nil, nil, nil, errors.New("indep: stanza runs past the list")
		}
		bl := specU16(st[33:])
		if seen[string(st[:33])] {
			return nil, nil, nil, errors.New("indep: duplicate stanza")
		}
		seen[string(st[:33])] = true
		h.stanzas = append(h.stanzas, specStanza{typ: st[0], keyID: st[1:33], body: st[35 : 35+bl]})
		st = st[35+bl:]
	}
	if len(h.stanzas) == 0 || len(h.stanzas) > specMaxStanzas {
		return nil, nil, nil, errors.New("indep: stanza count")
	}
	if l, ok = take(2); !ok {
		return nil, nil, nil, errors.New("indep: extension length")
	}
	ex, ok := take(specU16(l))
	if !ok {
		return nil, nil, nil, errors.New("indep: extensions run past the body")
	}
	if len(body) != 0 {
		return nil, nil, nil, errors.New("indep: bytes left in the body")
	}
	var snd *indepSender
	prev := -1
	for len(ex) > 0 {
		if len(ex) < 4 || len(ex) < 4+specU16(ex[2:]) {
			return nil, nil, nil, errors.New("indep: extension runs past the list")
		}
		typ, v := specU16(ex), ex[4:4+specU16(ex[2:])]
		ex = ex[4+len(v):]
		if typ <= prev {
			return nil, nil, nil, errors.New("indep: extensions out of order")
		}
		prev = typ
		switch {
		case typ == specExtSender:
			if len(v) != 59 {
				return nil, nil, nil, errors.New("indep: sender extension length")
			}
			snd = &indepSender{keyID: v[:32], alg: v[32], sigLen: specU16(v[33:])}
			switch {
			case snd.alg == 1 && snd.sigLen == 64:
			case snd.alg == 2 && snd.sigLen >= 256 && snd.sigLen <= 512:
			default:
				return nil, nil, nil, errors.New("indep: sig_alg or sig_len")
			}
		case typ&specExtCritical != 0:
			return nil, nil, nil, errors.New("indep: unknown critical extension")
		}
		h.exts = append(h.exts, specExt{typ: uint16(typ), value: v})
	}
	return h, snd, rest, nil
}

// indepKeys finds the file key and checks the header MAC; it returns the
// payload key, the payload and the trailer.
func indepKeys(bin []byte, privs []crypto.PrivateKey, senders []crypto.PublicKey) (kPayload, payload []byte, verifySig func() error, err error) {
	h, snd, rest, err := indepParse(bin)
	if err != nil {
		return nil, nil, nil, err
	}
	var senderKey crypto.PublicKey
	if snd != nil {
		for _, p := range senders {
			if id, _ := specKeyID(p); bytes.Equal(id, snd.keyID) {
				senderKey = p
			}
		}
		if senderKey == nil {
			return nil, nil, nil, errors.New("indep: untrusted sender")
		}
		if len(rest) < snd.sigLen {
			return nil, nil, nil, errors.New("indep: trailer truncated")
		}
	}
	fk, err := specUnwrap(h, privs)
	if err != nil {
		return nil, nil, nil, err
	}
	kh, kp, err := specDeriveKeys(fk, h.salt)
	if err != nil {
		return nil, nil, nil, err
	}
	m := hmac.New(sha256.New, kh)
	m.Write(h.macInput)
	if !hmac.Equal(m.Sum(nil), h.mac) {
		return nil, nil, nil, errors.New("indep: header MAC mismatch")
	}
	payload = rest
	verifySig = func() error { return nil }
	if snd != nil {
		payload, trailer := rest[:len(rest)-snd.sigLen], rest[len(rest)-snd.sigLen:]
		header := bin[:len(bin)-len(rest)]
		verifySig = func() error { return indepVerify(senderKey, snd, header, payload, trailer) }
		return kp, payload, verifySig, nil
	}
	return kp, payload, verifySig, nil
}

// indepOpen opens a binary or armored envelope, signed or anonymous.
func indepOpen(env []byte, privs []crypto.PrivateKey, senders []crypto.PublicKey) ([]byte, error) {
	bin := env
	if bytes.HasPrefix(env, []byte(specArmorBegin)) {
		var err error
		if bin, err = specDearmor(env); err != nil {
			return nil, err
		}
	}
	kp, payload, verifySig, err := indepKeys(bin, privs, senders)
	if err != nil {
		return nil, err
	}
	pt, err := specDecryptPayload(kp, payload)
	if err != nil {
		return nil, err
	}
	if err := verifySig(); err != nil {
		return nil, err
	}
	return pt, nil
}

// indepVerify checks the trailer (FORMAT.md section 6).
func indepVerify(pub crypto.PublicKey, snd *indepSender, header, payload, sig []byte) error {
	hh, ph := sha256.Sum256(header), sha256.Sum256(payload)
	m := append([]byte("tokenseal/v1 signature\x00"), hh[:]...)
	d := sha256.Sum256(append(m, ph[:]...))
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if snd.alg != 1 || k.Curve != elliptic.P256() || len(sig) != 64 {
			return errors.New("indep: not an ECDSA P-256 sender")
		}
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if s.Cmp(new(big.Int).Rsh(k.Curve.Params().N, 1)) > 0 {
			return errors.New("indep: high-S signature")
		}
		if !ecdsa.Verify(k, d[:], r, s) {
			return errors.New("indep: bad ECDSA signature")
		}
		return nil
	case *rsa.PublicKey:
		if snd.alg != 2 || len(sig) != k.Size() {
			return errors.New("indep: not an RSA-PSS sender")
		}
		return rsa.VerifyPSS(k, crypto.SHA256, d[:], sig, &rsa.PSSOptions{SaltLength: 32, Hash: crypto.SHA256})
	}
	return errors.New("indep: unsupported sender key")
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
	if bytes.HasPrefix(env, []byte(specArmorBegin)) {
		// The armor may be broken further on: decode the good prefix.
		bin = indepDearmorPrefix(env)
	}
	h, snd, rest, err := indepParse(bin)
	if err != nil {
		return fmt.Errorf("plaintext released from an envelope whose header is malformed: %v", err)
	}
	fk, err := specUnwrap(h, privs)
	if err != nil {
		return fmt.Errorf("plaintext released but the file key does not unwrap: %v", err)
	}
	kh, kp, _ := specDeriveKeys(fk, h.salt)
	m := hmac.New(sha256.New, kh)
	m.Write(h.macInput)
	if !hmac.Equal(m.Sum(nil), h.mac) {
		return errors.New("plaintext released under a header whose MAC does not verify")
	}
	if snd != nil && len(rest) >= snd.sigLen {
		full, err := specDecryptPayload(kp, rest[:len(rest)-snd.sigLen])
		if err == nil && bytes.Equal(full, released) {
			if !errors.Is(openErr, envelope.ErrSignature) {
				return fmt.Errorf("the whole plaintext was released, then %v", openErr)
			}
			return nil
		}
	}
	if len(released)%specChunkSize != 0 {
		return fmt.Errorf("%d bytes released before %v: not whole chunks", len(released), openErr)
	}
	aead, err := specGCM(kp)
	if err != nil {
		return err
	}
	for i := 0; len(released) > 0; i++ {
		if len(rest) < specChunkWire {
			return fmt.Errorf("chunk %d released but not in the input", i)
		}
		pt, err := aead.Open(nil, specNonce(uint64(i), false), rest[:specChunkWire], nil)
		if err != nil || !bytes.Equal(pt, released[:specChunkSize]) {
			return fmt.Errorf("released chunk %d is not an authenticated non-final chunk", i)
		}
		rest, released = rest[specChunkWire:], released[specChunkSize:]
	}
	return nil
}

// indepDearmorPrefix decodes the armored body as far as it is well
// formed.
func indepDearmorPrefix(env []byte) []byte {
	lines := strings.Split(string(env), "\n")
	var out []byte
	for _, l := range lines[1:] {
		b, err := base64.StdEncoding.Strict().DecodeString(l)
		if err != nil || len(l) == 0 {
			break
		}
		out = append(out, b...)
	}
	return out
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
