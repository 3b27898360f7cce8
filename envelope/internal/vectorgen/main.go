//go:debug cryptocustomrand=1

// Command vectorgen writes the envelope test vectors in
// envelope/testdata/vectors and the seed corpora of the fuzz targets
// (envelope/testdata/fuzz, envelope/internal/format/testdata/fuzz).
//
// Run it from the repository root:
//
//	go run ./envelope/internal/vectorgen
//
// It crafts the envelopes with internal/reference, the encoder written
// from FORMAT.md alone: it does not import the envelope package, so the
// vectors check the implementation rather than repeat it. The vectors
// named v2-* are of format version 2 (v2.go); the others are of version
// 1, which readers still read, and were written before version 2 existed
// (running this again gives them byte for byte). Output is deterministic: the
// keys are the fixed PEM files in envelope/testdata/keys, and every
// random value (file key, salt, ephemeral keys, OAEP seeds, PSS salts) is
// drawn from a ChaCha8 stream seeded by the vector's name; the
// cryptocustomrand GODEBUG above makes crypto/rsa use that stream, and
// ECDSA signatures are the deterministic ones of RFC 6979.
//
// # Vector files
//
// One file per vector, <name>.txt: header lines "name: value", a blank
// line, then the envelope bytes exactly (binary or armored). Headers:
//
//	expect:   success | header failure | armor failure | no match |
//	          unwrap failure | header MAC failure | payload failure |
//	          signature failure | untrusted sender
//	payload:  SHA-256 of the plaintext, hex (success only)
//	identity: a private key the reader holds, base64 PKCS#8 DER (repeated)
//	sender:   a sender public key the reader trusts, base64 SPKI DER (repeated)
//	comment:  why the vector is valid or not, one line
package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tokenseal/tokenseal/internal/reference"
)

// Expectations, as written in the files.
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

// fuzzMax is the largest envelope copied into the checked-in fuzz
// corpora; the fuzz targets add larger seeds in-process.
const fuzzMax = 4096

type keys map[string]crypto.Signer

func loadKeys(dir string) (keys, error) {
	ks := keys{}
	files, err := filepath.Glob(filepath.Join(dir, "*.pem"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		b, _ := pem.Decode(data)
		if b == nil || b.Type != "PRIVATE KEY" {
			return nil, fmt.Errorf("%s: no PRIVATE KEY block", f)
		}
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", f, err)
		}
		ks[strings.TrimSuffix(filepath.Base(f), ".pem")] = k.(crypto.Signer)
	}
	if len(ks) == 0 {
		return nil, fmt.Errorf("no keys in %s", dir)
	}
	return ks, nil
}

func (ks keys) get(name string) crypto.Signer {
	k, ok := ks[name]
	if !ok {
		log.Fatalf("no key %q", name)
	}
	return k
}

// The sender stamp of every signed vector: stream, serial and
// 2026-01-01T00:00:00Z.
const vecStream, vecSerial, vecTime = 0x1122334455667788, 42, 1767225600000

func senderValue(id []byte, alg byte, sigLen int) []byte {
	return reference.SenderValue(id, alg, sigLen, vecStream, vecSerial, vecTime)
}

func senderExt(signer crypto.Signer) []byte {
	return reference.SenderExt(signer, vecStream, vecSerial, vecTime)
}

// ---------------------------------------------------------------------
// Vectors.

type vector struct {
	name     string
	expect   string
	comment  string
	ids      []string // keys the reader holds
	senders  []string // sender keys it trusts
	plain    []byte   // for success
	data     []byte
	stanzas  [][]byte // for the FuzzStanza corpus
	header   []byte   // for the FuzzHeader corpus
	fuzzOpen bool     // opened by FuzzOpen's keys: copy into its corpus
}

type gen struct {
	ks      keys
	vectors []*vector
	ver     byte // the version the envelopes are crafted in
}

// craft starts an envelope of version g.ver (see reference.NewCraft).
func (g *gen) craft(rnd io.Reader) *reference.Craft {
	e := reference.NewCraft(rnd)
	e.Version = g.ver
	return e
}

// rng returns the deterministic random stream of a vector.
func rng(name string) io.Reader {
	seed := sha256.Sum256([]byte("tokenseal test vector " + name))
	return mrand.NewChaCha8(seed)
}

func plain(name string, n int) []byte {
	b := make([]byte, n)
	io.ReadFull(rng("plaintext "+name), b)
	return b
}

func (g *gen) pub(name string) crypto.PublicKey { return g.ks.get(name).Public() }
func (g *gen) ec(name string) *ecdsa.PublicKey  { return g.pub(name).(*ecdsa.PublicKey) }
func (g *gen) rsa(name string) *rsa.PublicKey   { return g.pub(name).(*rsa.PublicKey) }

func (g *gen) add(v *vector) {
	for _, o := range g.vectors {
		if o.name == v.name {
			log.Fatalf("vector %s twice", v.name)
		}
	}
	if v.comment == "" || v.expect == "" || len(v.ids) == 0 {
		log.Fatalf("vector %s: comment, expect and ids are required", v.name)
	}
	subset := func(have []string, allowed ...string) bool {
	outer:
		for _, h := range have {
			for _, a := range allowed {
				if h == a {
					continue outer
				}
			}
			return false
		}
		return true
	}
	v.fuzzOpen = len(v.data) <= fuzzMax && subset(v.ids, "p256-a", "rsa2048-a") &&
		subset(v.senders, "p256-sign", "rsa2048-sign")
	g.vectors = append(g.vectors, v)
}

// simple builds a one-recipient anonymous envelope to key and lets mut
// change it before sealing.
func (g *gen) simple(name, key string, pt []byte, mut func(rnd io.Reader, e *reference.Craft)) (*reference.Craft, []byte) {
	rnd := rng(name)
	e := g.craft(rnd)
	e.Stanzas = [][]byte{reference.StanzaFor(rnd, g.pub(key), e.FK)}
	if mut != nil {
		mut(rnd, e)
	}
	return e, e.Seal(pt)
}

// ok adds a valid vector.
func (g *gen) ok(name, comment string, ids, senders []string, pt, data []byte, e *reference.Craft) {
	v := &vector{name: name, expect: expSuccess, comment: comment, ids: ids, senders: senders, plain: pt, data: data}
	if e != nil {
		v.stanzas, v.header = e.Stanzas, e.Header()
	}
	g.add(v)
}

func (g *gen) bad(name, expect, comment string, ids, senders []string, data []byte, e *reference.Craft) {
	v := &vector{name: name, expect: expect, comment: comment, ids: ids, senders: senders, data: data}
	if e != nil {
		v.stanzas, v.header = e.Stanzas, e.Header()
	}
	g.add(v)
}

func ids(names ...string) []string { return names }

// signed crafts an envelope to recip signed by signer, in the version
// g.ver, and returns it with its header, payload and trailer; mut may
// change it before its header is made.
func (g *gen) signed(name, recip, signer string, pt []byte, variant int, mut func(e *reference.Craft)) (*reference.Craft, []byte, []byte, []byte) {
	rnd := rng(name)
	e := g.craft(rnd)
	e.Stanzas = [][]byte{reference.StanzaFor(rnd, g.pub(recip), e.FK)}
	e.Exts = [][]byte{senderExt(g.ks.get(signer))}
	if mut != nil {
		mut(e)
	}
	h := e.Header()
	p := reference.EncryptPayload(e.PayloadKey(), pt)
	return e, h, p, reference.Sign(rnd, g.ks.get(signer), h, p, variant)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func (g *gen) all() {
	short := []byte("The quick brown fox jumps over the lazy dog.\n")

	// Valid: each stanza type, OAEP digests, armor, sizes.
	for _, c := range []struct{ name, key, comment string }{
		{"ecdh-p256", "p256-a", "ECDH P-256 stanza (type 2)"},
		{"ecdh-p384", "p384-a", "ECDH P-384 stanza (type 3)"},
		{"rsa-oaep-sha256", "rsa2048-a", "RSA-OAEP stanza (type 1), oaep_hash 2 (SHA-256)"},
	} {
		e, data := g.simple(c.name, c.key, short, nil)
		g.ok(c.name, c.comment, ids(c.key), nil, short, data, e)
	}
	{
		name := "rsa-oaep-sha1"
		rnd := rng(name)
		e := g.craft(rnd)
		e.Stanzas = [][]byte{reference.EncStanza(reference.TypeRSA, reference.KeyID(g.rsa("rsa2048-a")), reference.RSABody(rnd, g.rsa("rsa2048-a"), reference.OAEPSHA1, sha1.New(), nil, e.FK))}
		g.ok(name, "RSA-OAEP stanza with oaep_hash 1 (SHA-1, as SoftHSM2 needs)", ids("rsa2048-a"), nil, short, e.Seal(short), e)
	}
	for _, c := range []struct {
		name    string
		n       int
		comment string
	}{
		{"empty-payload", 0, "empty plaintext: exactly one, empty, final chunk"},
		{"one-byte", 1, "one byte of plaintext"},
		{"full-last-chunk", reference.ChunkSize, "65536 bytes: one full chunk that is the final chunk"},
		{"two-chunks", reference.ChunkSize + 1, "65537 bytes: a full chunk and a final chunk of one byte"},
	} {
		pt := plain(c.name, c.n)
		e, data := g.simple(c.name, "p256-a", pt, nil)
		g.ok(c.name, c.comment, ids("p256-a"), nil, pt, data, e)
	}
	{
		e, data := g.simple("armor", "p256-a", short, nil)
		g.ok("armor", "ASCII armor, 64-character lines, final short line", ids("p256-a"), nil, short, reference.Armor(data), e)
		e, data = g.simple("armor-rsa", "rsa2048-a", short, nil)
		g.ok("armor-rsa", "ASCII armor of an RSA-OAEP envelope", ids("rsa2048-a"), nil, short, reference.Armor(data), e)
		// A binary length that is a multiple of 48: the last line is full.
		hl := len(e.Header())
		n := (48 - (hl+reference.TagSize)%48) % 48
		pt := plain("armor-last-line-64", n)
		e, data = g.simple("armor-last-line-64", "rsa2048-a", pt, nil)
		if len(data)%48 != 0 {
			log.Fatal("armor-last-line-64: wrong length")
		}
		g.ok("armor-last-line-64", "armor whose last line has exactly 64 characters", ids("rsa2048-a"), nil, pt, reference.Armor(data), e)
	}
	{
		name := "multi-recipient"
		rnd := rng(name)
		e := g.craft(rnd)
		e.Stanzas = [][]byte{
			reference.StanzaFor(rnd, g.pub("rsa2048-b"), e.FK),
			reference.StanzaFor(rnd, g.pub("p256-b"), e.FK),
			reference.StanzaFor(rnd, g.pub("p384-a"), e.FK),
		}
		g.ok(name, "three recipients; the reader holds only the third (P-384)", ids("p384-a"), nil, short, e.Seal(short), e)
	}
	{
		e, data := g.simple("unknown-stanza-type", "p256-a", short, func(rnd io.Reader, e *reference.Craft) {
			e.Stanzas = append([][]byte{reference.EncStanza(0x7f, bytes.Repeat([]byte{0x55}, 32), []byte("for someone else"))}, e.Stanzas...)
		})
		g.ok("unknown-stanza-type", "a stanza of unknown type 0x7f comes first and is skipped", ids("p256-a"), nil, short, data, e)
		e, data = g.simple("malformed-stanza-other-key", "p256-a", short, func(rnd io.Reader, e *reference.Craft) {
			e.Stanzas = append([][]byte{reference.EncStanza(reference.TypeP256, reference.KeyID(g.pub("p256-b")), []byte{1, 2, 3})}, e.Stanzas...)
		})
		g.ok("malformed-stanza-other-key", "a malformed P-256 stanza for a key the reader does not hold is not looked at", ids("p256-a"), nil, short, data, e)
		e, data = g.simple("noncritical-extension", "p256-a", short, func(rnd io.Reader, e *reference.Craft) {
			e.Exts = [][]byte{reference.EncExt(0x0001, []byte("ignored")), reference.EncExt(0x7fff, nil)}
		})
		g.ok("noncritical-extension", "unknown non-critical extensions 0x0001 and 0x7fff are ignored", ids("p256-a"), nil, short, data, e)
	}

	// Signed.
	signed := g.signed
	{
		e, h, p, s := signed("signed-ecdsa", "p256-a", "p256-sign", short, reference.SigGood, nil)
		g.ok("signed-ecdsa", "signed with ECDSA P-256, low-S r||s trailer", ids("p256-a"), ids("p256-sign"), short, cat(h, p, s), e)
		g.bad("signed-ecdsa-high-s", expSignature, "the same signature with s replaced by n-s: valid ECDSA but not the canonical low-S form",
			ids("p256-a"), ids("p256-sign"), cat(h, p, reference.Sign(rng("x"), g.ks.get("p256-sign"), h, p, reference.SigHighS)), e)
		g.ok("signed-ecdsa-armor", "signed envelope in ASCII armor", ids("p256-a"), ids("p256-sign"), short, reference.Armor(cat(h, p, s)), e)
		flipped := bytes.Clone(s)
		flipped[10] ^= 1
		g.bad("signed-ecdsa-flipped", expSignature, "one bit of r flipped", ids("p256-a"), ids("p256-sign"), cat(h, p, flipped), e)
		g.bad("signed-trailer-truncated", expPayload, "the last byte of the signature is missing, so the payload ends one byte early",
			ids("p256-a"), ids("p256-sign"), cat(h, p, s[:63]), e)
		g.bad("signed-trailer-missing", expPayload, "no signature trailer at all", ids("p256-a"), ids("p256-sign"), cat(h, p), e)
		g.bad("signed-trailing-data", expPayload, "a byte after the signature", ids("p256-a"), ids("p256-sign"), cat(h, p, s, []byte{0}), e)
		g.bad("signed-untrusted", expUntrusted, "signed by a key the reader does not trust", ids("p256-a"), ids("rsa2048-sign"), cat(h, p, s), e)
		g.bad("signed-no-trusted-senders", expUntrusted, "signed, and the reader trusts no sender", ids("p256-a"), nil, cat(h, p, s), e)
	}
	{
		e, h, p, s := signed("signed-rsa-pss", "rsa2048-a", "rsa2048-sign", short, reference.SigGood, nil)
		g.ok("signed-rsa-pss", "signed with RSA-PSS (SHA-256, MGF1-SHA-256, 32-byte salt)", ids("rsa2048-a"), ids("rsa2048-sign"), short, cat(h, p, s), e)
		g.bad("signed-rsa-pss-salt-1", expSignature, "RSA-PSS with a 1-byte salt instead of 32",
			ids("rsa2048-a"), ids("rsa2048-sign"), cat(h, p, reference.Sign(rng("signed-rsa-pss-salt-1"), g.ks.get("rsa2048-sign"), h, p, reference.SigPSSSalt1)), e)
		g.bad("signed-rsa-pkcs1v15", expSignature, "an RSA PKCS#1 v1.5 signature where RSA-PSS is required",
			ids("rsa2048-a"), ids("rsa2048-sign"), cat(h, p, reference.Sign(nil, g.ks.get("rsa2048-sign"), h, p, reference.SigPKCS1)), e)
	}
	{
		pt := plain("signed-full-last-chunk", reference.ChunkSize)
		e, h, p, s := signed("signed-full-last-chunk", "p256-a", "p256-sign", pt, reference.SigGood, nil)
		g.ok("signed-full-last-chunk", "signed, 65536 bytes: the trailer follows a full final chunk", ids("p256-a"), ids("p256-sign"), pt, cat(h, p, s), e)
	}
	{
		// The sender extension names one key, another signed.
		e, h, p, _ := signed("signed-by-other-key", "p256-a", "p256-sign", short, reference.SigGood, nil)
		s := reference.Sign(nil, g.ks.get("p256-b"), h, p, reference.SigGood)
		g.bad("signed-by-other-key", expSignature, "the sender extension names p256-sign but p256-b signed",
			ids("p256-a"), ids("p256-sign", "p256-b"), cat(h, p, s), e)
	}
	for _, c := range []struct {
		name, comment string
		value         []byte
	}{
		{"sender-unknown-alg", "sig_alg 3 is not defined", senderValue(reference.KeyID(g.pub("p256-sign")), 3, 64)},
		{"sender-ecdsa-siglen-65", "ECDSA with sig_len 65", senderValue(reference.KeyID(g.pub("p256-sign")), reference.SigECDSA, 65)},
		{"sender-pss-siglen-255", "RSA-PSS with sig_len 255", senderValue(reference.KeyID(g.pub("rsa2048-sign")), reference.SigPSS, 255)},
		{"sender-length-58", "a sender extension of 58 bytes", senderValue(reference.KeyID(g.pub("p256-sign")), reference.SigECDSA, 64)[:58]},
		{"sender-length-60", "a sender extension of 60 bytes", append(senderValue(reference.KeyID(g.pub("p256-sign")), reference.SigECDSA, 64), 0)},
	} {
		e, h, p, s := signed(c.name, "p256-a", "p256-sign", short, reference.SigGood, func(e *reference.Craft) { e.Exts = [][]byte{reference.EncExt(reference.ExtSender, c.value)} })
		g.bad(c.name, expHeader, c.comment, ids("p256-a"), ids("p256-sign", "rsa2048-sign"), cat(h, p, s), e)
	}

	// Header framing (every one with a correct MAC).
	hdrBad := func(name, comment string, mut func(rnd io.Reader, e *reference.Craft)) {
		e, data := g.simple(name, "p256-a", short, mut)
		g.bad(name, expHeader, comment, ids("p256-a"), nil, data, e)
	}
	hdrBad("bad-magic", "magic \"tokenseaL\"", func(_ io.Reader, e *reference.Craft) { e.Magic = "tokenseaL" })
	hdrBad("version-0", "version 0", func(_ io.Reader, e *reference.Craft) { e.Version = 0 })
	hdrBad("version-3", "version 3", func(_ io.Reader, e *reference.Craft) { e.Version = 3 })
	hdrBad("chunk-log2-17", "chunk_log2 17", func(_ io.Reader, e *reference.Craft) { e.ChunkLog2 = 17 })
	hdrBad("zero-stanzas", "no stanzas", func(_ io.Reader, e *reference.Craft) { e.Stanzas = nil })
	hdrBad("duplicate-stanza", "the same stanza twice", func(_ io.Reader, e *reference.Craft) { e.Stanzas = append(e.Stanzas, e.Stanzas[0]) })
	hdrBad("duplicate-stanza-rewrapped", "two stanzas of one type for one key, each valid", func(rnd io.Reader, e *reference.Craft) {
		e.Stanzas = append(e.Stanzas, reference.StanzaFor(rnd, g.pub("p256-a"), e.FK))
	})
	hdrBad("duplicate-unknown-stanza", "two stanzas of an unknown type for one key id", func(_ io.Reader, e *reference.Craft) {
		s := reference.EncStanza(0x7f, bytes.Repeat([]byte{0x55}, 32), []byte("x"))
		e.Stanzas = append(e.Stanzas, s, s)
	})
	hdrBad("unknown-critical-extension", "extension 0x8002 is critical and unknown", func(_ io.Reader, e *reference.Craft) {
		e.Exts = [][]byte{reference.EncExt(0x8002, nil)}
	})
	hdrBad("extensions-out-of-order", "extensions 0x0002 then 0x0001", func(_ io.Reader, e *reference.Craft) {
		e.Exts = [][]byte{reference.EncExt(2, nil), reference.EncExt(1, nil)}
	})
	hdrBad("extension-repeated", "extension 0x0001 twice", func(_ io.Reader, e *reference.Craft) {
		e.Exts = [][]byte{reference.EncExt(1, nil), reference.EncExt(1, nil)}
	})
	hdrBad("body-trailing-byte", "a byte left over in the header body", func(_ io.Reader, e *reference.Craft) { e.BodyTrail = []byte{0} })
	hdrBad("stanza-runs-past", "the last stanza's length runs past the stanza list", func(_ io.Reader, e *reference.Craft) {
		s := e.Stanzas[0]
		s = append(s[:33:33], reference.U16(nil, len(s)-35+1)...)
		e.Stanzas[0] = append(s, e.Stanzas[0][35:]...)
	})
	{
		_, data := g.simple("header-truncated", "p256-a", short, nil)
		g.bad("header-truncated", expHeader, "the envelope ends inside the header", ids("p256-a"), nil, data[:100], nil)
		huge := append([]byte("tokenseal\x01\xff\xff\xff"), make([]byte, 64)...)
		g.bad("body-length-16MiB", expHeader, "a header body length of 16 MiB - 1, above the 4 MiB limit", ids("p256-a"), nil, huge, nil)
		over := append([]byte("tokenseal\x01\x40\x00\x01"), make([]byte, 64)...)
		g.bad("body-length-4MiB-plus-1", expHeader, "a header body length of 4 MiB + 1", ids("p256-a"), nil, over, nil)
		g.bad("empty-file", expHeader, "zero bytes", ids("p256-a"), nil, []byte{}, nil)
	}

	// The MAC.
	{
		e, data := g.simple("mac-flipped", "p256-a", short, nil)
		hl := len(e.Header())
		data[hl-1] ^= 0x80
		g.bad("mac-flipped", expMAC, "the last bit of the header MAC flipped", ids("p256-a"), nil, data, e)
		e, data = g.simple("mac-other-file-key", "p256-a", short, func(rnd io.Reader, e *reference.Craft) {
			e.MACFK = make([]byte, 32)
			io.ReadFull(rnd, e.MACFK)
		})
		g.bad("mac-other-file-key", expMAC, "the MAC is keyed from another file key", ids("p256-a"), nil, data, e)
		e, data = g.simple("salt-changed", "p256-a", short, nil)
		data[14] ^= 1
		g.bad("salt-changed", expMAC, "a salt bit flipped after the MAC was made", ids("p256-a"), nil, data, e)
	}

	// The payload.
	{
		e, data := g.simple("chunk-flipped", "p256-a", short, nil)
		data[len(e.Header())+3] ^= 1
		g.bad("chunk-flipped", expPayload, "a ciphertext bit flipped", ids("p256-a"), nil, data, e)
		e, data = g.simple("tag-flipped", "p256-a", short, nil)
		data[len(data)-1] ^= 1
		g.bad("tag-flipped", expPayload, "a tag bit flipped", ids("p256-a"), nil, data, e)

		e, _ = g.simple("last-flag-unset", "p256-a", short, nil)
		data = append(e.Header(), reference.SealChunk(e.PayloadKey(), 0, false, short)...)
		g.bad("last-flag-unset", expPayload, "the only chunk sealed without the last-chunk flag", ids("p256-a"), nil, data, e)

		pt := plain("first-flag-set", reference.ChunkSize+1)
		e, _ = g.simple("first-flag-set", "p256-a", pt, nil)
		kp := e.PayloadKey()
		data = cat(e.Header(), reference.SealChunk(kp, 0, true, pt[:reference.ChunkSize]), reference.SealChunk(kp, 1, true, pt[reference.ChunkSize:]))
		g.bad("first-flag-set", expPayload, "two chunks, the first sealed with the last-chunk flag", ids("p256-a"), nil, data, e)

		pt = plain("missing-last-chunk", reference.ChunkSize+1)
		e, data = g.simple("missing-last-chunk", "p256-a", pt, nil)
		data = data[:len(e.Header())+reference.ChunkSize+reference.TagSize]
		g.bad("missing-last-chunk", expPayload, "the final chunk of a two-chunk envelope removed", ids("p256-a"), nil, data, e)

		pt = plain("empty-last-chunk", reference.ChunkSize)
		e, _ = g.simple("empty-last-chunk", "p256-a", pt, nil)
		kp = e.PayloadKey()
		data = cat(e.Header(), reference.SealChunk(kp, 0, false, pt), reference.SealChunk(kp, 1, true, nil))
		g.bad("empty-last-chunk", expPayload, "a full chunk followed by an empty final chunk (only chunk 0 may be empty)", ids("p256-a"), nil, data, e)

		e, data = g.simple("trailing-data", "p256-a", short, nil)
		g.bad("trailing-data", expPayload, "one byte after the final chunk", ids("p256-a"), nil, append(data, 0), e)
		e, data = g.simple("final-chunk-short", "p256-a", short, nil)
		g.bad("final-chunk-short", expPayload, "the final chunk is 10 bytes, shorter than a tag", ids("p256-a"), nil, data[:len(e.Header())+10], e)
		e, data = g.simple("no-payload", "p256-a", short, nil)
		g.bad("no-payload", expPayload, "the header and nothing after it", ids("p256-a"), nil, data[:len(e.Header())], e)
		e, data = g.simple("wrong-payload-key", "p256-a", short, nil)
		other := make([]byte, 32)
		data = append(e.Header(), reference.EncryptPayload(other, short)...)
		g.bad("wrong-payload-key", expPayload, "payload sealed under another key", ids("p256-a"), nil, data, e)
	}

	// Armor.
	{
		// A binary length that is not a multiple of 3: the last line is padded.
		n := 100
		_, bin := g.simple("armor-base", "p256-a", plain("armor-base", n), nil)
		for len(bin)%3 == 0 {
			n++
			_, bin = g.simple("armor-base", "p256-a", plain("armor-base", n), nil)
		}
		a := string(reference.Armor(bin))
		lines := strings.Split(strings.TrimSuffix(a, "\n"), "\n")
		last := lines[len(lines)-2]
		if !strings.HasSuffix(last, "=") {
			log.Fatal("armor-base: want a padded last line")
		}
		arm := func(name, comment, s string) {
			if s == a {
				log.Fatalf("%s: unchanged", name)
			}
			g.bad(name, expArmor, comment, ids("p256-a"), nil, []byte(s), nil)
		}
		g.ok("armor-base", "the armored envelope the armor-* vectors change", ids("p256-a"), nil, plain("armor-base", n), []byte(a), nil)
		arm("armor-crlf", "CRLF line endings", strings.ReplaceAll(a, "\n", "\r\n"))
		arm("armor-no-final-newline", "no newline after the end line", strings.TrimSuffix(a, "\n"))
		arm("armor-data-after-end", "a newline after the end line", a+"\n")
		arm("armor-missing-end", "no end line", strings.TrimSuffix(a, reference.ArmorEnd+"\n"))
		arm("armor-space", "a space inside a line", strings.Replace(a, lines[2][:10], lines[2][:9]+" ", 1))
		// Non-zero padding bits: the last character before "=" changed
		// so that it decodes to the same bytes but is not canonical.
		pad := []byte(last)
		i := strings.IndexByte(last, '=') - 1
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
		pad[i] = alphabet[strings.IndexByte(alphabet, pad[i])|1]
		arm("armor-nonzero-padding-bits", "padding bits not zero (non-canonical base64)", strings.Replace(a, last, string(pad), 1))
		// Re-wrap the body at 76 and at 60 characters.
		body := strings.Join(lines[1:len(lines)-1], "")
		wrap := func(n int) string {
			var b strings.Builder
			b.WriteString(reference.ArmorBegin + "\n")
			for s := body; len(s) > 0; {
				k := min(n, len(s))
				b.WriteString(s[:k] + "\n")
				s = s[k:]
			}
			return b.String() + reference.ArmorEnd + "\n"
		}
		arm("armor-76-columns", "lines of 76 characters", wrap(76))
		// Base64 decoders skip CR and LF: 60 characters and 4 CRs make
		// a line of 64 that decodes, a second armored form.
		var cr strings.Builder
		cr.WriteString(reference.ArmorBegin + "\n")
		for s := body; len(s) > 0; {
			k := min(60, len(s))
			line := s[:k]
			if k == 60 {
				line = line[:30] + "\r\r\r\r" + line[30:]
			}
			cr.WriteString(line + "\n")
			s = s[k:]
		}
		arm("armor-cr-in-lines", "lines of 60 base64 characters and 4 CRs (which base64 decoders skip)", cr.String()+reference.ArmorEnd+"\n")
		arm("armor-60-columns", "lines of 60 characters", wrap(60))
		arm("armor-short-line-in-middle", "a short line before the last", strings.Replace(a, lines[1], lines[1][:32]+"\n"+lines[1][32:], 1))
		arm("armor-blank-line", "an empty line inside the body", strings.Replace(a, lines[1]+"\n", lines[1]+"\n\n", 1))
		arm("armor-unpadded", "the final line without its = padding", strings.Replace(a, last, strings.TrimRight(last, "="), 1))
		arm("armor-truncated", "the armor ends in the middle of the body", strings.Join(lines[:3], "\n")+"\n")
	}

	// The wrapping layer (Wycheproof-style): every one is a correctly
	// MACed envelope whose only defect is in the stanza of the key the
	// reader holds.
	g.wrapping(short)

	// Stanza selection.
	{
		name := "first-matching-stanza-broken"
		rnd := rng(name)
		e := g.craft(rnd)
		broken := reference.StanzaFor(rnd, g.pub("p256-a"), e.FK)
		broken[len(broken)-1] ^= 1
		e.Stanzas = [][]byte{broken, reference.StanzaFor(rnd, g.pub("rsa2048-a"), e.FK)}
		g.bad(name, expUnwrap, "the first stanza the reader can use does not unwrap; it decides, the good RSA stanza after it is not tried",
			ids("p256-a", "rsa2048-a"), nil, e.Seal(short), e)
		e, data := g.simple("not-addressed", "p256-b", short, nil)
		g.bad("not-addressed", expNoMatch, "addressed to p256-b only", ids("p256-a", "rsa2048-a"), nil, data, e)
		e, data = g.simple("wrong-type-for-key-id", "p256-a", short, func(_ io.Reader, e *reference.Craft) { e.Stanzas[0][0] = reference.TypeP384 })
		g.bad("wrong-type-for-key-id", expNoMatch, "the P-256 key's key id under stanza type 3 (P-384)", ids("p256-a"), nil, data, e)
	}
}

// wrapping adds the Wycheproof-style vectors of the key-wrapping layer.
func (g *gen) wrapping(pt []byte) {
	// RSA-OAEP.
	rsaCase := func(name, comment string, body func(rnd io.Reader, pub *rsa.PublicKey, fk []byte) []byte) {
		rnd := rng(name)
		e := g.craft(rnd)
		pub := g.rsa("rsa2048-a")
		e.Stanzas = [][]byte{reference.EncStanza(reference.TypeRSA, reference.KeyID(pub), body(rnd, pub, e.FK))}
		g.bad(name, expUnwrap, comment, ids("rsa2048-a"), nil, e.Seal(pt), e)
	}
	rsaCase("wrap-rsa-hash-byte-0", "oaep_hash 0 is not defined", func(rnd io.Reader, pub *rsa.PublicKey, fk []byte) []byte {
		b := reference.RSABody(rnd, pub, reference.OAEPSHA256, sha256.New(), nil, fk)
		b[0] = 0
		return b
	})
	rsaCase("wrap-rsa-hash-byte-3", "oaep_hash 3 is not defined", func(rnd io.Reader, pub *rsa.PublicKey, fk []byte) []byte {
		b := reference.RSABody(rnd, pub, reference.OAEPSHA256, sha256.New(), nil, fk)
		b[0] = 3
		return b
	})
	rsaCase("wrap-rsa-sha1-byte-sha256-ciphertext", "oaep_hash says SHA-1, C was made with SHA-256", func(rnd io.Reader, pub *rsa.PublicKey, fk []byte) []byte {
		return append([]byte{reference.OAEPSHA1}, reference.RSABody(rnd, pub, reference.OAEPSHA256, sha256.New(), nil, fk)[1:]...)
	})
	rsaCase("wrap-rsa-sha256-byte-sha1-ciphertext", "oaep_hash says SHA-256, C was made with SHA-1", func(rnd io.Reader, pub *rsa.PublicKey, fk []byte) []byte {
		return append([]byte{reference.OAEPSHA256}, reference.RSABody(rnd, pub, reference.OAEPSHA1, sha1.New(), nil, fk)[1:]...)
	})
	rsaCase("wrap-rsa-sha384-ciphertext", "C made with OAEP SHA-384 (another hash), oaep_hash 2", func(rnd io.Reader, pub *rsa.PublicKey, fk []byte) []byte {
		return append([]byte{reference.OAEPSHA256}, reference.RSABody(rnd, pub, 0, sha512.New384(), nil, fk)[1:]...)
	})
	rsaCase("wrap-rsa-label", "C made with the label \"tokenseal\" (the label must be empty)", func(rnd io.Reader, pub *rsa.PublicKey, fk []byte) []byte {
		return reference.RSABody(rnd, pub, reference.OAEPSHA256, sha256.New(), []byte("tokenseal"), fk)
	})
	rsaCase("wrap-rsa-file-key-31", "OAEP of a 31-byte key", func(rnd io.Reader, pub *rsa.PublicKey, fk []byte) []byte {
		return reference.RSABody(rnd, pub, reference.OAEPSHA256, sha256.New(), nil, fk[:31])
	})
	rsaCase("wrap-rsa-file-key-33", "OAEP of a 33-byte key", func(rnd io.Reader, pub *rsa.PublicKey, fk []byte) []byte {
		return reference.RSABody(rnd, pub, reference.OAEPSHA256, sha256.New(), nil, append(bytes.Clone(fk), 0))
	})
	rsaCase("wrap-rsa-ciphertext-short", "C one byte shorter than the modulus", func(rnd io.Reader, pub *rsa.PublicKey, fk []byte) []byte {
		b := reference.RSABody(rnd, pub, reference.OAEPSHA256, sha256.New(), nil, fk)
		return b[:len(b)-1]
	})
	rsaCase("wrap-rsa-ciphertext-long", "C with a leading zero byte, one longer than the modulus", func(rnd io.Reader, pub *rsa.PublicKey, fk []byte) []byte {
		b := reference.RSABody(rnd, pub, reference.OAEPSHA256, sha256.New(), nil, fk)
		return append([]byte{b[0], 0}, b[1:]...)
	})
	rsaCase("wrap-rsa-ciphertext-ge-modulus", "C equal to the modulus", func(rnd io.Reader, pub *rsa.PublicKey, fk []byte) []byte {
		return append([]byte{reference.OAEPSHA256}, pub.N.FillBytes(make([]byte, pub.Size()))...)
	})
	rsaCase("wrap-rsa-pkcs1v15", "C made with PKCS#1 v1.5 encryption", func(rnd io.Reader, pub *rsa.PublicKey, fk []byte) []byte {
		c, err := rsa.EncryptPKCS1v15(rnd, pub, fk)
		if err != nil {
			log.Fatal(err)
		}
		return append([]byte{reference.OAEPSHA256}, c...)
	})
	rsaCase("wrap-rsa-empty-body", "an empty stanza body", func(io.Reader, *rsa.PublicKey, []byte) []byte { return nil })

	// ECDH, on both curves.
	for _, c := range []struct{ key, curve string }{{"p256-a", "p256"}, {"p384-a", "p384"}} {
		pub := g.ec(c.key)
		ci, err := reference.CurveOf(pub.Curve)
		if err != nil {
			log.Fatal(err)
		}
		typ := ci.Type
		size := (pub.Curve.Params().BitSize + 7) / 8
		ecCase := func(what, comment string, body func(rnd io.Reader, fk []byte) []byte) {
			name := "wrap-" + c.curve + "-" + what
			rnd := rng(name)
			e := g.craft(rnd)
			e.Stanzas = [][]byte{reference.EncStanza(typ, reference.KeyID(pub), body(rnd, e.FK))}
			g.bad(name, expUnwrap, comment, ids(c.key), nil, e.Seal(pt), e)
		}
		// replaceE keeps W from an honest wrap and puts a bad E in its place.
		replaceE := func(bad func(e []byte) []byte) func(io.Reader, []byte) []byte {
			return func(rnd io.Reader, fk []byte) []byte {
				e, w := reference.ECDHWrap(rnd, pub, fk)
				return append(bad(bytes.Clone(e)), w...)
			}
		}
		p := pub.Curve.Params().P
		ecCase("infinity", "E is the point at infinity (0x00), padded to the point length", replaceE(func(e []byte) []byte {
			return make([]byte, len(e))
		}))
		ecCase("infinity-short", "E is the one-byte point at infinity 0x00", func(rnd io.Reader, fk []byte) []byte {
			_, w := reference.ECDHWrap(rnd, pub, fk)
			return append([]byte{0}, w...)
		})
		ecCase("compressed", "E is a compressed point (0x02/0x03 || X)", func(rnd io.Reader, fk []byte) []byte {
			e, w := reference.ECDHWrap(rnd, pub, fk)
			x, y := e[1:1+size], e[1+size:]
			return append(append([]byte{2 | y[size-1]&1}, x...), w...)
		})
		ecCase("compressed-padded", "E is a compressed point padded with zeros to the uncompressed length", replaceE(func(e []byte) []byte {
			y := e[1+size:]
			out := make([]byte, len(e))
			out[0] = 2 | y[size-1]&1
			copy(out[1:], e[1:1+size])
			return out
		}))
		ecCase("hybrid", "E uses the hybrid encoding 0x06/0x07", replaceE(func(e []byte) []byte {
			e[0] = 6 | e[len(e)-1]&1
			return e
		}))
		ecCase("not-on-curve", "E's y-coordinate plus one: not on the curve", replaceE(func(e []byte) []byte {
			y := new(big.Int).SetBytes(e[1+size:])
			y.Add(y, big.NewInt(1)).Mod(y, p)
			y.FillBytes(e[1+size:])
			return e
		}))
		ecCase("zero-point", "E is (0, 0)", replaceE(func(e []byte) []byte {
			clear(e[1:])
			return e
		}))
		// Coordinates >= p that reduce to a point on the curve.
		x, y := smallXPoint(pub.Curve)
		xp := new(big.Int).Add(x, p)
		ecCase("x-ge-p", "E's x-coordinate is x+p for a point (x, y) on the curve", replaceE(func(e []byte) []byte {
			xp.FillBytes(e[1 : 1+size])
			y.FillBytes(e[1+size:])
			return e
		}))
		limit := new(big.Int).Lsh(big.NewInt(1), uint(8*size))
		yy := new(big.Int).Sub(p, y) // the other root, pick the small one
		if yy.Cmp(y) > 0 {
			yy = y
		}
		if yp := new(big.Int).Add(yy, p); yp.Cmp(limit) < 0 {
			ecCase("y-ge-p", "E's y-coordinate is y+p for a point (x, y) on the curve", replaceE(func(e []byte) []byte {
				x.FillBytes(e[1 : 1+size])
				yp.FillBytes(e[1+size:])
				return e
			}))
		}
		ecCase("coordinates-all-ff", "E's coordinates are all 0xff (>= p)", replaceE(func(e []byte) []byte {
			for i := 1; i < len(e); i++ {
				e[i] = 0xff
			}
			return e
		}))
		ecCase("recipient-point", "E is the recipient's own public key (a valid point, wrong shared secret)", replaceE(func(e []byte) []byte {
			k, _ := pub.ECDH()
			return k.Bytes()
		}))
		ecCase("generator", "E is the generator G (a valid point, wrong shared secret)", replaceE(func(e []byte) []byte {
			gx, gy := pub.Curve.Params().Gx, pub.Curve.Params().Gy
			gx.FillBytes(e[1 : 1+size])
			gy.FillBytes(e[1+size:])
			return e
		}))
		ecCase("kwp-flipped", "a bit of the wrapped key W flipped (KWP integrity check)", func(rnd io.Reader, fk []byte) []byte {
			e, w := reference.ECDHWrap(rnd, pub, fk)
			w[5] ^= 1
			return append(e, w...)
		})
		ecCase("file-key-31", "W wraps a 31-byte key", func(rnd io.Reader, fk []byte) []byte {
			e, w := reference.ECDHWrap(rnd, pub, fk[:31])
			return append(e, w...)
		})
		ecCase("file-key-40", "W wraps a 40-byte key", func(rnd io.Reader, fk []byte) []byte {
			e, w := reference.ECDHWrap(rnd, pub, append(bytes.Clone(fk), make([]byte, 8)...))
			return append(e, w...)
		})
		ecCase("body-short", "the stanza body one byte short", func(rnd io.Reader, fk []byte) []byte {
			e, w := reference.ECDHWrap(rnd, pub, fk)
			return append(e, w[:len(w)-1]...)
		})
		ecCase("body-long", "the stanza body one byte long", func(rnd io.Reader, fk []byte) []byte {
			e, w := reference.ECDHWrap(rnd, pub, fk)
			return append(append(e, w...), 0)
		})
		other := "p384-a"
		if c.curve == "p384" {
			other = "p256-b"
		}
		ecCase("other-curve-point", "E is a point of the other curve ("+other+")", func(rnd io.Reader, fk []byte) []byte {
			k, _ := g.ec(other).ECDH()
			_, w := reference.ECDHWrap(rnd, pub, fk)
			return append(k.Bytes(), w...)
		})
	}
}

// smallXPoint returns the point on curve with the smallest x >= 1, so
// that x+p still fits in the coordinate's bytes.
func smallXPoint(curve elliptic.Curve) (*big.Int, *big.Int) {
	params := curve.Params()
	p := params.P
	for i := int64(1); ; i++ {
		x := big.NewInt(i)
		// y^2 = x^3 - 3x + b
		y2 := new(big.Int).Exp(x, big.NewInt(3), p)
		y2.Sub(y2, new(big.Int).Mul(big.NewInt(3), x))
		y2.Add(y2, params.B)
		y2.Mod(y2, p)
		y := new(big.Int).ModSqrt(y2, p)
		if y == nil {
			continue
		}
		if !curve.IsOnCurve(x, y) {
			log.Fatal("smallXPoint: not on the curve")
		}
		return x, y
	}
}

// ---------------------------------------------------------------------
// Output.

func (g *gen) b64key(name string) string {
	der, err := x509.MarshalPKCS8PrivateKey(g.ks.get(name))
	if err != nil {
		log.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

func (g *gen) b64pub(name string) string {
	der, err := x509.MarshalPKIXPublicKey(g.pub(name))
	if err != nil {
		log.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

func (g *gen) file(v *vector) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "expect: %s\n", v.expect)
	if v.expect == expSuccess {
		h := sha256.Sum256(v.plain)
		fmt.Fprintf(&b, "payload: %s\n", hex.EncodeToString(h[:]))
	}
	for _, k := range v.ids {
		fmt.Fprintf(&b, "identity: %s\n", g.b64key(k))
	}
	for _, k := range v.senders {
		fmt.Fprintf(&b, "sender: %s\n", g.b64pub(k))
	}
	fmt.Fprintf(&b, "comment: %s (reader holds %s", v.comment, strings.Join(v.ids, ", "))
	if len(v.senders) > 0 {
		fmt.Fprintf(&b, "; trusts %s", strings.Join(v.senders, ", "))
	}
	b.WriteString(")\n\n")
	b.Write(v.data)
	return b.Bytes()
}

// corpusFile is the encoding `go test -fuzz` uses for its corpus.
func corpusFile(values ...any) []byte {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, v := range values {
		switch v := v.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%s)\n", strconv.Quote(string(v)))
		case byte:
			fmt.Fprintf(&b, "byte(%s)\n", strconv.QuoteRune(rune(v)))
		case uint32:
			fmt.Fprintf(&b, "uint32(%d)\n", v)
		default:
			log.Fatalf("corpus value %T", v)
		}
	}
	return b.Bytes()
}

// writeDir replaces the generated files of dir (those ending in suffix,
// or all for suffix "") with files.
func writeDir(dir, suffix string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, f := range old {
		if !f.IsDir() && strings.HasSuffix(f.Name(), suffix) {
			if _, keep := files[f.Name()]; !keep {
				if err := os.Remove(filepath.Join(dir, f.Name())); err != nil {
					return err
				}
			}
		}
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// fuzzDir replaces the "vec-" files of a corpus directory: crashers that
// `go test -fuzz` wrote there are kept.
func fuzzDir(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(dir, "vec-*"))
	for _, f := range old {
		if _, keep := files[filepath.Base(f)]; !keep {
			os.Remove(f)
		}
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("vectorgen: ")
	keyDir := flag.String("keys", "envelope/testdata/keys", "directory of the fixed PEM keys")
	out := flag.String("out", "envelope/testdata/vectors", "where to write the vectors")
	fuzz := flag.String("fuzz", "envelope/testdata/fuzz", "the envelope package's fuzz corpus directory")
	formatFuzz := flag.String("format-fuzz", "envelope/internal/format/testdata/fuzz", "the format package's fuzz corpus directory")
	flag.Parse()

	ks, err := loadKeys(*keyDir)
	if err != nil {
		log.Fatal(err)
	}
	g := &gen{ks: ks, ver: reference.Version1}
	g.all()
	g.security()
	g.ver = reference.Version2
	g.v2()

	vecs := map[string][]byte{}
	open, stz, hdr, arm := map[string][]byte{}, map[string][]byte{}, map[string][]byte{}, map[string][]byte{}
	counts := map[string]int{}
	hdrN := map[bool]int{} // FuzzHeader seeds of version 2 (true) and 1
	for _, v := range g.vectors {
		vecs[v.name+".txt"] = g.file(v)
		counts[v.expect]++
		if v.fuzzOpen {
			open["vec-"+v.name] = corpusFile(v.data)
		}
		for i, s := range v.stanzas {
			if len(v.stanzas) > 0 && len(s) >= 35 && len(stz) < 64 {
				stz[fmt.Sprintf("vec-%s-%d", v.name, i)] = corpusFile(s[0], s[35:])
			}
		}
		// Up to 48 headers of version 1 and 16 of version 2.
		if v2 := strings.HasPrefix(v.name, "v2-"); v.header != nil && len(v.header) <= fuzzMax && hdrN[v2] < map[bool]int{false: 48, true: 16}[v2] {
			hdr["vec-"+v.name] = corpusFile(v.header)
			hdrN[v2]++
		}
		if bytes.HasPrefix(v.data, []byte(reference.ArmorBegin)) && len(v.data) <= fuzzMax {
			arm["vec-"+v.name] = corpusFile(v.data)
		}
	}
	// FuzzMutate's inputs choose an envelope, an operation and where.
	mut := map[string][]byte{}
	for op := range 9 {
		for which := range 6 {
			a := uint32((65552*op + 1000*which) % 200000)
			b := uint32(977 * (op + which))
			mut[fmt.Sprintf("vec-op%d-env%d", op, which)] = corpusFile(byte(which), byte(op), a, b, []byte{0x80, byte(op)})
		}
	}
	if err := writeDir(*out, ".txt", vecs); err != nil {
		log.Fatal(err)
	}
	for dir, files := range map[string]map[string][]byte{
		filepath.Join(*fuzz, "FuzzOpen"):         open,
		filepath.Join(*fuzz, "FuzzStanza"):       stz,
		filepath.Join(*fuzz, "FuzzMutate"):       mut,
		filepath.Join(*formatFuzz, "FuzzHeader"): hdr,
		filepath.Join(*formatFuzz, "FuzzArmor"):  arm,
	} {
		if err := fuzzDir(dir, files); err != nil {
			log.Fatal(err)
		}
	}
	log.Printf("%d vectors %v; corpora: FuzzOpen %d, FuzzStanza %d, FuzzMutate %d, FuzzHeader %d, FuzzArmor %d",
		len(g.vectors), counts, len(open), len(stz), len(mut), len(hdr), len(arm))
}
