package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"

	"github.com/tokenseal/tokenseal/internal/reference"
)

// v2 adds the vectors of format version 2 (FORMAT.md sections 6.2 and
// 9): envelopes that open, and for the signature over chunk digests one
// vector per way a co-recipient, who knows the file key and so can seal
// chunks that authenticate, might change the payload or header under
// the sender's signature. Every such vector keeps the sender's genuine
// signature and expects a signature failure.
func (g *gen) v2() {
	short := []byte("The quick brown fox jumps over the lazy dog.\n")

	// Anonymous envelopes: as in version 1 but for the version byte.
	for _, c := range []struct{ name, key, comment string }{
		{"v2-ecdh-p256", "p256-a", "version 2, ECDH P-256 stanza"},
		{"v2-ecdh-p384", "p384-a", "version 2, ECDH P-384 stanza"},
		{"v2-rsa-oaep-sha256", "rsa2048-a", "version 2, RSA-OAEP stanza"},
	} {
		e, data := g.simple(c.name, c.key, short, nil)
		g.ok(c.name, c.comment, ids(c.key), nil, short, data, e)
	}
	for _, c := range []struct {
		name    string
		n       int
		comment string
	}{
		{"v2-empty-payload", 0, "version 2, empty plaintext: one empty final chunk"},
		{"v2-full-last-chunk", reference.ChunkSize, "version 2, 65536 bytes: one full final chunk"},
		{"v2-two-chunks", reference.ChunkSize + 1, "version 2, a full chunk and a final chunk of one byte"},
	} {
		pt := plain(c.name, c.n)
		e, data := g.simple(c.name, "p256-a", pt, nil)
		g.ok(c.name, c.comment, ids("p256-a"), nil, pt, data, e)
	}
	{
		e, data := g.simple("v2-armor", "p256-a", short, nil)
		g.ok("v2-armor", "version 2 in ASCII armor", ids("p256-a"), nil, short, reference.Armor(data), e)
		pt := plain("v2-missing-last-chunk", reference.ChunkSize+1)
		e, data = g.simple("v2-missing-last-chunk", "p256-a", pt, nil)
		g.bad("v2-missing-last-chunk", expPayload, "version 2, the final chunk of two removed", ids("p256-a"), nil,
			data[:len(e.Header())+reference.ChunkWire], e)
	}
	g.v2Signed(short)
	g.v2Tampered()
	g.v2Digests()
	g.versionMix(short)
}

// v2Signed adds valid signed envelopes of version 2: both algorithms,
// payloads of one to three chunks, armor.
func (g *gen) v2Signed(short []byte) {
	for _, c := range []struct {
		name, recip, signer string
		n                   int
		comment             string
	}{
		{"v2-signed-ecdsa", "p256-a", "p256-sign", -1, "version 2, signed with ECDSA P-256 over the chunk digests"},
		{"v2-signed-rsa-pss", "rsa2048-a", "rsa2048-sign", -1, "version 2, signed with RSA-PSS over the chunk digests"},
		{"v2-signed-empty", "p256-a", "p256-sign", 0, "version 2, signed, empty plaintext: count 1, one empty chunk"},
		{"v2-signed-full-last-chunk", "p256-a", "p256-sign", reference.ChunkSize, "version 2, signed, 65536 bytes: count 1"},
		{"v2-signed-two-chunks", "p384-a", "p256-sign", reference.ChunkSize + 1, "version 2, signed, 65537 bytes: count 2"},
		{"v2-signed-three-chunks", "rsa2048-a", "rsa2048-sign", 2*reference.ChunkSize + 100, "version 2, signed with RSA-PSS, count 3"},
	} {
		pt := short
		if c.n >= 0 {
			pt = plain(c.name, c.n)
		}
		e, h, p, s := g.signed(c.name, c.recip, c.signer, pt, reference.SigGood, nil)
		g.ok(c.name, c.comment, ids(c.recip), ids(c.signer), pt, cat(h, p, s), e)
	}
	e, h, p, s := g.signed("v2-signed-armor", "p256-a", "p256-sign", short, reference.SigGood, nil)
	g.ok("v2-signed-armor", "version 2, signed, in ASCII armor", ids("p256-a"), ids("p256-sign"), short, reference.Armor(cat(h, p, s)), e)
	g.bad("v2-signed-trailer-truncated", expPayload, "version 2, the last byte of the signature missing",
		ids("p256-a"), ids("p256-sign"), cat(h, p, s[:len(s)-1]), e)
	g.bad("v2-signed-trailer-missing", expPayload, "version 2, no signature trailer", ids("p256-a"), ids("p256-sign"), cat(h, p), e)
	g.bad("v2-signed-untrusted", expUntrusted, "version 2, signed by a key the reader does not trust", ids("p256-a"), ids("rsa2048-sign"), cat(h, p, s), e)
	flipped := bytes.Clone(s)
	flipped[40] ^= 1
	g.bad("v2-signed-flipped", expSignature, "version 2, one bit of s flipped", ids("p256-a"), ids("p256-sign"), cat(h, p, flipped), e)
	g.bad("v2-signed-high-s", expSignature, "version 2, s replaced by n-s (not low-S)", ids("p256-a"), ids("p256-sign"),
		cat(h, p, reference.Sign(nil, g.ks.get("p256-sign"), h, p, reference.SigHighS)), e)
}

// sealChunks seals the plaintext chunks pts as a whole payload under
// kp: chunk i with index i, the last one flagged. A co-recipient knows
// kp (it is derived from the file key), so whatever it seals this way
// authenticates.
func sealChunks(kp []byte, pts ...[]byte) []byte {
	var out []byte
	for i, pt := range pts {
		out = append(out, reference.SealChunk(kp, uint64(i), i == len(pts)-1, pt)...)
	}
	return out
}

// split cuts pt into chunks of at most reference.ChunkSize.
func split(pt []byte) [][]byte {
	var out [][]byte
	for len(pt) > reference.ChunkSize {
		out = append(out, pt[:reference.ChunkSize])
		pt = pt[reference.ChunkSize:]
	}
	return append(out, pt)
}

// v2Tampered adds the co-recipient's attempts on a signed version 2
// envelope: every payload below authenticates chunk by chunk, and keeps
// the sender's signature of the original.
func (g *gen) v2Tampered() {
	const name = "v2-tamper"
	pt := plain(name, 3*reference.ChunkSize) // three full chunks
	e, h, _, s := g.signed(name, "p256-a", "p256-sign", pt, reference.SigGood, nil)
	kp := e.PayloadKey()
	c := split(pt)
	other := plain("v2-tamper other", reference.ChunkSize)
	sig := func(vname, comment string, payload []byte) {
		g.bad(vname, expSignature, comment+"; every chunk authenticates, the signature is the original's",
			ids("p256-a"), ids("p256-sign"), cat(h, payload, s), e)
	}
	g.ok("v2-tamper-original", "version 2, signed, three full chunks: the envelope the v2-tamper-* vectors change",
		ids("p256-a"), ids("p256-sign"), pt, cat(h, sealChunks(kp, c...), s), e)
	sig("v2-tamper-substituted", "chunk 1 replaced by other plaintext sealed as chunk 1", sealChunks(kp, c[0], other, c[2]))
	sig("v2-tamper-swapped", "chunks 0 and 1 swapped, each resealed for its new index", sealChunks(kp, c[1], c[0], c[2]))
	sig("v2-tamper-dropped-middle", "chunk 1 dropped, chunk 2 resealed as chunk 1 (last)", sealChunks(kp, c[0], c[2]))
	sig("v2-tamper-dropped-last", "chunk 2 dropped, chunk 1 resealed as the last chunk", sealChunks(kp, c[0], c[1]))
	sig("v2-tamper-truncated", "the last chunk one byte shorter, resealed", sealChunks(kp, c[0], c[1], c[2][:len(c[2])-1]))
	sig("v2-tamper-extended", "a fourth chunk appended, chunk 2 resealed as not last", sealChunks(kp, c[0], c[1], c[2], []byte("more")))
	sig("v2-tamper-duplicated", "chunk 0 repeated as chunk 1", sealChunks(kp, c[0], c[0], c[2]))
	// Another envelope of the same sender to the same recipient: its
	// second chunk, decrypted with its file key and resealed under this
	// one's, moved into this envelope.
	opt := plain("v2-tamper-other-envelope", 3*reference.ChunkSize)
	sig("v2-tamper-moved-chunk", "chunk 1 of another envelope by the same sender moved in (resealed under this file key)",
		sealChunks(kp, c[0], split(opt)[1], c[2]))
	_, oh, op, os := g.signed("v2-tamper-other-envelope", "p256-a", "p256-sign", opt, reference.SigGood, nil)
	g.ok("v2-tamper-other-envelope", "version 2, signed: the other envelope of v2-tamper-moved-*", ids("p256-a"), ids("p256-sign"), opt, cat(oh, op, os), nil)
	g.bad("v2-tamper-moved-signature", expSignature, "this header and payload with the other envelope's signature (same sender)",
		ids("p256-a"), ids("p256-sign"), cat(h, sealChunks(kp, c...), os), e)
	// The header rewritten by a co-recipient, who can make its MAC.
	resigned := func(vname, comment string, mut func(e *reference.Craft)) {
		f := *e
		f.Exts = [][]byte{bytes.Clone(e.Exts[0])}
		mut(&f)
		g.bad(vname, expSignature, comment+"; the MAC recomputed, the signature is the original's",
			ids("p256-a"), ids("p256-sign"), cat(f.Header(), sealChunks(kp, c...), s), &f)
	}
	resigned("v2-tamper-serial", "the serial raised by one", func(f *reference.Craft) {
		v := f.Exts[0]
		binary.BigEndian.PutUint64(v[4+43:], binary.BigEndian.Uint64(v[4+43:])+1)
	})
	resigned("v2-tamper-recipient-added", "a second recipient stanza added", func(f *reference.Craft) {
		f.Stanzas = [][]byte{e.Stanzas[0], reference.StanzaFor(rng("v2-tamper-recipient-added"), g.pub("p256-b"), e.FK)}
	})
}

// v2Digests adds signatures over digests computed almost as section 6.2
// says: each leaves out or changes one thing, and fails to verify.
func (g *gen) v2Digests() {
	const name = "v2-digest"
	pt := plain(name, reference.ChunkSize+10) // two chunks
	e, h, p, _ := g.signed(name, "p256-a", "p256-sign", pt, reference.SigGood, nil)
	chunks, err := reference.Chunks(p)
	if err != nil {
		panic(err)
	}
	hh := sha256.Sum256(h)
	// digest is d of 6.2 with its parts given: the label and nonce of
	// each chunk digest, the count.
	digest := func(chunkDigest func(i int, c []byte) []byte, count uint64) []byte {
		list := sha256.New()
		for i, c := range chunks {
			list.Write(chunkDigest(i, c))
		}
		m := append([]byte(reference.SigContext2), hh[:]...)
		m = binary.BigEndian.AppendUint64(m, count)
		d := sha256.Sum256(list.Sum(m))
		return d[:]
	}
	spec := func(i int, c []byte) []byte { return reference.ChunkDigest(uint64(i), i == len(chunks)-1, c) }
	labelled := func(label string, nonce func(i int) []byte, body func(i int, c []byte) []byte) func(int, []byte) []byte {
		return func(i int, c []byte) []byte {
			d := sha256.Sum256(cat([]byte(label), nonce(i), body(i, c)))
			return d[:]
		}
	}
	count := uint64(len(chunks))
	nonce := func(i int) []byte { return reference.Nonce(uint64(i), i == len(chunks)-1) }
	asSent := func(_ int, c []byte) []byte { return c }
	for _, c := range []struct {
		vname, comment string
		d              []byte
	}{
		{"v2-digest-spec", "", digest(spec, count)},
		{"v2-digest-v1", "signed over the version 1 digest (6.1) of this version 2 envelope", reference.DigestV1(h, p)},
		{"v2-digest-no-count", "count 0 in M instead of 2", digest(spec, 0)},
		{"v2-digest-no-nonce", "chunk digests without the nonce", digest(labelled(reference.ChunkLabel, func(int) []byte { return nil }, asSent), count)},
		{"v2-digest-no-last-flag", "chunk digests with the last flag never set", digest(labelled(reference.ChunkLabel, func(i int) []byte { return reference.Nonce(uint64(i), false) }, asSent), count)},
		{"v2-digest-no-zero-byte", "the chunk label without its 0x00", digest(labelled("tokenseal/v2 chunk", nonce, asSent), count)},
		{"v2-digest-plaintext", "chunk digests over the plaintext instead of the chunks as sent", digest(labelled(reference.ChunkLabel, nonce, func(i int, _ []byte) []byte { return split(pt)[i] }), count)},
	} {
		sg := reference.SignDigest(nil, g.ks.get("p256-sign"), c.d, reference.SigGood)
		if c.vname == "v2-digest-spec" {
			// The construction of reference.Sign, field by field: a check
			// on this function itself.
			if !bytes.Equal(c.d, mustDigest(h, p)) {
				panic("v2Digests: digest differs from reference.SignedDigest")
			}
			g.ok(c.vname, "version 2, signed over d computed field by field from section 6.2", ids("p256-a"), ids("p256-sign"), pt, cat(h, p, sg), e)
			continue
		}
		g.bad(c.vname, expSignature, "version 2, "+c.comment, ids("p256-a"), ids("p256-sign"), cat(h, p, sg), e)
	}
}

func mustDigest(h, p []byte) []byte {
	d, err := reference.SignedDigest(h, p)
	if err != nil {
		panic(err)
	}
	return d
}

// versionMix adds envelopes whose version byte was rewritten (and MAC
// recomputed, as a co-recipient can) under a signature made for the
// other version.
func (g *gen) versionMix(short []byte) {
	for _, c := range []struct {
		name     string
		from, to byte
		comment  string
	}{
		{"v1-signed-relabelled-v2", reference.Version1, reference.Version2, "a signed version 1 envelope relabelled version 2"},
		{"v2-signed-relabelled-v1", reference.Version2, reference.Version1, "a signed version 2 envelope relabelled version 1"},
	} {
		g.ver = c.from
		e, _, p, s := g.signed(c.name, "p256-a", "p256-sign", short, reference.SigGood, nil)
		f := *e
		f.Version = c.to
		g.bad(c.name, expSignature, c.comment+", the MAC recomputed, the signature the original's",
			ids("p256-a"), ids("p256-sign"), cat(f.Header(), p, s), &f)
	}
	g.ver = reference.Version2
}
