package main

import (
	"bytes"
	"encoding/binary"
	"io"

	"github.com/tokenseal/tokenseal/internal/reference"
)

// security adds the vectors of issue 11's second security pass, each
// from the FORMAT.md rule it names.
func (g *gen) security() {
	g.previousSender()
	g.rsaSizes()
	g.senderStamp()
	g.order()
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
		e := g.craft(rnd)
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
		e := g.craft(rnd)
		e.Stanzas = [][]byte{reference.StanzaFor(rnd, g.pub("rsa2047-a"), e.FK), reference.StanzaFor(rnd, g.pub("rsa2048-a"), e.FK)}
		g.ok(name, "a stanza for the reader's 2047-bit key, passed over, then one for its 2048-bit key, which opens",
			ids("rsa2047-a", "rsa2048-a"), nil, short, e.Seal(short), e)
	}
	signed := func(name, signer string, variant int) ([]byte, *reference.Craft) {
		rnd := rng(name)
		e := g.craft(rnd)
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

// signedCraft is an envelope to p256-a signed by p256-sign with the
// given serial and timestamp; mut changes the craft before the header is
// made, and after reports the header, payload and signature for further
// damage.
func (g *gen) signedCraft(name string, serial, ts uint64, mut func(*reference.Craft), after func(h, p, sig []byte)) ([]byte, *reference.Craft) {
	rnd := rng(name)
	e := g.craft(rnd)
	e.Stanzas = [][]byte{reference.StanzaFor(rnd, g.pub("p256-a"), e.FK)}
	e.Exts = [][]byte{reference.SenderExt(g.ks.get("p256-sign"), vecStream, serial, ts)}
	if mut != nil {
		mut(e)
	}
	h := e.Header()
	p := reference.EncryptPayload(e.PayloadKey(), plain(name, 70000))
	sig := reference.Sign(rnd, g.ks.get("p256-sign"), h, p, reference.SigGood)
	if after != nil {
		after(h, p, sig)
	}
	return append(append(h, p...), sig...), e
}

// senderStamp: section 2.3, serials from 1 to 2^64-1 and timestamps
// before the year 10000; anything else is a malformed header (2.5, step
// 1).
func (g *gen) senderStamp() {
	for _, c := range []struct {
		name, comment string
		serial, ts    uint64
		ok            bool
	}{
		{"sender-serial-max", "serial 2^64-1, the largest", 1<<64 - 1, vecTime, true},
		{"sender-timestamp-9999", "timestamp 253402300799999 (9999-12-31T23:59:59.999Z), the last possible", 42, reference.MaxTimestamp - 1, true},
		{"sender-serial-0", "serial 0, which no writer writes", 0, vecTime, false},
		{"sender-timestamp-year-10000", "timestamp 253402300800000 (10000-01-01T00:00:00Z)", 42, reference.MaxTimestamp, false},
		{"sender-timestamp-2-63", "timestamp 2^63 (before 1970 if read as a signed integer)", 42, 1 << 63, false},
	} {
		data, e := g.signedCraft(c.name, c.serial, c.ts, nil, nil)
		if c.ok {
			g.ok(c.name, c.comment, ids("p256-a"), ids("p256-sign"), plain(c.name, 70000), data, e)
		} else {
			g.bad(c.name, expHeader, c.comment+": a malformed header", ids("p256-a"), ids("p256-sign"), data, e)
		}
	}
}

// order: section 2.5, several defects at once; the earliest step's
// refusal is the one reported.
func (g *gen) order() {
	breakStanza := func(e *reference.Craft) { e.Stanzas[0][len(e.Stanzas[0])-1] ^= 1 }
	otherMAC := func(e *reference.Craft) { e.MACFK = bytes.Repeat([]byte{7}, 32) }
	flipPayload := func(h, p, sig []byte) { p[100] ^= 1 }
	flipSig := func(h, p, sig []byte) { sig[3] ^= 1 }
	for _, c := range []struct {
		name, expect, comment string
		mut                   func(*reference.Craft)
		after                 func(h, p, sig []byte)
		senders               []string
	}{
		{"order-malformed-untrusted", expHeader, "an unknown critical extension (step 1), from an untrusted sender (step 2)",
			func(e *reference.Craft) { e.Exts = append(e.Exts, reference.EncExt(0xf001, nil)) }, nil, nil},
		{"order-untrusted-unwrap", expUntrusted, "an untrusted sender (step 2), and the stanza does not unwrap (step 3)", breakStanza, nil, nil},
		{"order-unwrap-mac", expUnwrap, "the stanza does not unwrap (step 3), and the MAC is another key's (step 4)",
			func(e *reference.Craft) { breakStanza(e); otherMAC(e) }, nil, ids("p256-sign")},
		{"order-mac-payload", expMAC, "the MAC is another key's (step 4), and a payload bit is flipped (step 5)", otherMAC, flipPayload, ids("p256-sign")},
		{"order-payload-signature", expPayload, "a payload bit is flipped (step 5), and a signature bit (step 6)", nil,
			func(h, p, sig []byte) { flipPayload(h, p, sig); flipSig(h, p, sig) }, ids("p256-sign")},
	} {
		data, e := g.signedCraft(c.name, 42, vecTime, c.mut, c.after)
		g.bad(c.name, c.expect, c.comment, ids("p256-a"), c.senders, data, e)
	}
	// Armor broken after the header's lines is a payload refusal (step 5),
	// after a stanza that does not unwrap (step 3).
	data, e := g.signedCraft("order-armor-tail-unwrap", 42, vecTime, breakStanza, nil)
	g.bad("order-armor-tail-unwrap", expUnwrap, "the stanza does not unwrap (step 3), and a line follows the armor's end line (step 5)",
		ids("p256-a"), ids("p256-sign"), append(reference.Armor(data), "x\n"...), e)
}
