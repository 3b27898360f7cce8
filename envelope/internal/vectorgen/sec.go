package main

import (
	"encoding/binary"
	"io"

	"github.com/tokenseal/tokenseal/internal/reference"
)

// security adds the vectors of issue 11's second security pass, each
// from the FORMAT.md rule it names.
func (g *gen) security() {
	g.previousSender()
	g.rsaSizes()
}

// prevValue is a previous-sender extension's value (FORMAT.md 2.4).
func prevValue(keyID []byte, stream, serial, timestamp uint64) []byte {
	v := append([]byte(nil), keyID...)
	v = binary.BigEndian.AppendUint64(v, stream)
	v = binary.BigEndian.AppendUint64(v, serial)
	return binary.BigEndian.AppendUint64(v, timestamp)
}

// previousSender: section 2.4. A previous sender only under a sender
// extension, 56 bytes, a serial other than 0, a possible timestamp.
func (g *gen) previousSender() {
	short := []byte("rewrapped, and says so\n")
	prevID := reference.KeyID(g.pub("rsa2048-sign"))
	good := prevValue(prevID, 0x0102030405060708, 5, vecTime-86400000)
	signedWith := func(name string, prev []byte) ([]byte, *reference.Craft) {
		rnd := rng(name)
		e := reference.NewCraft(rnd)
		e.Stanzas = [][]byte{reference.StanzaFor(rnd, g.pub("p256-a"), e.FK)}
		e.Exts = [][]byte{reference.EncExt(reference.ExtPrevSender, prev), senderExt(g.ks.get("p256-sign"))}
		h := e.Header()
		p := reference.EncryptPayload(e.PayloadKey(), short)
		return append(append(h, p...), reference.Sign(rnd, g.ks.get("p256-sign"), h, p, reference.SigGood)...), e
	}
	data, e := signedWith("previous-sender-signed", good)
	g.ok("previous-sender-signed", "a signed envelope naming a previous sender (0x0002, 56 bytes): the signer's claim",
		ids("p256-a"), ids("p256-sign"), short, data, e)
	for _, c := range []struct {
		name, comment string
		value         []byte
	}{
		{"previous-sender-length-55", "a previous-sender extension of 55 bytes", good[:55]},
		{"previous-sender-length-57", "a previous-sender extension of 57 bytes", append(append([]byte(nil), good...), 0)},
		{"previous-sender-serial-0", "a previous sender with prev_serial 0", prevValue(prevID, 1, 0, vecTime)},
		{"previous-sender-year-10000", "a previous sender with prev_timestamp 253402300800000 (the year 10000)", prevValue(prevID, 1, 5, reference.MaxTimestamp)},
		{"previous-sender-timestamp-2-63", "a previous sender with prev_timestamp 2^63", prevValue(prevID, 1, 5, 1<<63)},
	} {
		data, e := signedWith(c.name, c.value)
		g.bad(c.name, expHeader, c.comment, ids("p256-a"), ids("p256-sign"), data, e)
	}
	e, data = g.simple("previous-sender-unsigned", "p256-a", short, func(_ io.Reader, e *reference.Craft) {
		e.Exts = [][]byte{reference.EncExt(reference.ExtPrevSender, good)}
	})
	g.bad("previous-sender-unsigned", expHeader, "a well-formed previous sender in an envelope without a sender extension: anyone could have written it",
		ids("p256-a"), ids("rsa2048-sign"), data, e)
}

// rsaSizes: section 2, "RSA key sizes", and section 2.3's PSS salt of
// exactly 32 bytes.
func (g *gen) rsaSizes() {
	short := []byte("sizes are in bits\n")
	e, data := g.simple("rsa-2047-recipient", "rsa2047-a", short, nil)
	g.bad("rsa-2047-recipient", expNoMatch, "the only stanza is for the reader's RSA key of 2047 bits (a 256-byte modulus): passed over, as for a key that cannot open",
		ids("rsa2047-a"), nil, data, e)
	{
		name := "rsa-2047-then-2048"
		rnd := rng(name)
		e := reference.NewCraft(rnd)
		e.Stanzas = [][]byte{reference.StanzaFor(rnd, g.pub("rsa2047-a"), e.FK), reference.StanzaFor(rnd, g.pub("rsa2048-a"), e.FK)}
		g.ok(name, "a stanza for the reader's 2047-bit key, passed over, then one for its 2048-bit key, which opens",
			ids("rsa2047-a", "rsa2048-a"), nil, short, e.Seal(short), e)
	}
	signed := func(name, signer string, variant int) ([]byte, *reference.Craft) {
		rnd := rng(name)
		e := reference.NewCraft(rnd)
		e.Stanzas = [][]byte{reference.StanzaFor(rnd, g.pub("p256-a"), e.FK)}
		e.Exts = [][]byte{senderExt(g.ks.get(signer))}
		h := e.Header()
		p := reference.EncryptPayload(e.PayloadKey(), short)
		return append(append(h, p...), reference.Sign(rnd, g.ks.get(signer), h, p, variant)...), e
	}
	data, e = signed("signed-rsa-2047", "rsa2047-sign", reference.SigGood)
	g.bad("signed-rsa-2047", expSignature, "a valid RSA-PSS signature by a trusted sender key of 2047 bits (sig_len 256)",
		ids("p256-a"), ids("rsa2047-sign"), data, e)
	for _, c := range []struct {
		name, comment string
		variant       int
	}{
		{"signed-rsa-pss-salt-64", "RSA-PSS with a 64-byte salt instead of 32", reference.SigPSSSalt64},
		{"signed-rsa-pss-salt-max", "RSA-PSS with the longest salt the modulus allows (222 bytes) instead of 32", reference.SigPSSSaltMax},
	} {
		data, e := signed(c.name, "rsa2048-sign", c.variant)
		g.bad(c.name, expSignature, c.comment, ids("p256-a"), ids("rsa2048-sign"), data, e)
	}
}
