package envelope_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	ref "github.com/tokenseal/tokenseal/internal/reference"
)

// The defects of TestRefusalOrder, each at the step of FORMAT.md 2.5
// that refuses it.
const (
	defParse     = 1 << iota // an unknown critical extension (step 1)
	defArmorHead             // broken armor in a line of header bytes (step 1)
	defSender                // the reader trusts nobody (step 2)
	defStanza                // the reader's stanza does not unwrap (step 3)
	defMAC                   // the MAC is keyed from another file key (step 4)
	defPayload               // a payload bit flipped (step 5)
	defArmorTail             // a line after the armor's end line (step 5)
	defSignature             // a signature bit flipped (step 6)
	defCount     = iota
)

var defStep = [defCount]int{1, 1, 2, 3, 4, 5, 5, 6}

// TestRefusalOrder holds the implementation and the independent decoder
// to FORMAT.md 2.5 (issue 11 finding 9: which error wins when several
// apply): for every combination of defects, each at a known step, both
// report a refusal of the earliest step. Before the fix the reference
// decoder checked the armor whole and the trailer's length before the
// stanza, and the text did not say.
func TestRefusalOrder(t *testing.T) {
	bob := testKeys(t)[2]
	alice, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for set := 1; set < 1<<defCount; set++ {
		armored := set&(defArmorHead|defArmorTail) != 0
		for _, armor := range []bool{false, true} {
			if armored && !armor {
				continue
			}
			env := defective(t, set, armor, bob.priv, alice)
			want := 7
			for d := 0; d < defCount; d++ {
				if set&(1<<d) != 0 {
					want = min(want, defStep[d])
				}
			}
			var senders []crypto.PublicKey
			if set&defSender == 0 {
				senders = []crypto.PublicKey{alice.Public()}
			}
			name := fmt.Sprintf("defects %08b, armor %v", set, armor)
			if got := implStep(env, bob.priv, senders); got != want {
				t.Errorf("%s: the implementation refused at step %d, want %d", name, got, want)
			}
			if got := refStep(env, bob.priv, senders); got != want {
				t.Errorf("%s: the independent decoder refused at step %d, want %d", name, got, want)
			}
		}
	}
}

// defective is a signed envelope to bob from alice with the defects of
// set.
func defective(t *testing.T, set int, armor bool, bob crypto.PrivateKey, alice *ecdsa.PrivateKey) []byte {
	c := ref.NewCraft(rand.Reader)
	stanza := ref.StanzaFor(rand.Reader, bob.(crypto.Signer).Public(), c.FK)
	if set&defStanza != 0 {
		stanza[len(stanza)-1] ^= 1 // in W: it does not unwrap
	}
	c.Stanzas = [][]byte{stanza}
	c.Exts = [][]byte{ref.SenderExt(alice, 1, 1, uint64(time.Now().UnixMilli()))}
	if set&defParse != 0 {
		c.Exts = append([][]byte{ref.EncExt(0x7f01, nil)}, append(c.Exts, ref.EncExt(0xf001, nil))...)
	}
	if set&defMAC != 0 {
		c.MACFK = specRandom(32)
	}
	h := c.Header()
	p := ref.EncryptPayload(c.PayloadKey(), specPlain(100000))
	sig := ref.Sign(rand.Reader, alice, h, p, ref.SigGood)
	if set&defPayload != 0 {
		p[70000] ^= 1 // in the second chunk
	}
	if set&defSignature != 0 {
		sig[5] ^= 1
	}
	env := append(append(h, p...), sig...)
	if !armor {
		return env
	}
	a := ref.Armor(env)
	if set&defArmorHead != 0 {
		a[len(ref.ArmorBegin)+1+65+3] = '*' // the second line: header bytes 48 to 95
	}
	if set&defArmorTail != 0 {
		a = append(a, "trailing\n"...)
	}
	return a
}

// implStep is the step at which Open refuses env (7 when it does not):
// steps 1 to 4 are refused by Open, 5 and 6 while reading.
func implStep(env []byte, priv crypto.PrivateKey, senders []crypto.PublicKey) int {
	id, err := envelope.NewSoftwareIdentity(priv)
	if err != nil {
		panic(err)
	}
	r, err := envelope.Open(bytes.NewReader(env), []envelope.Identity{id}, trustingKeys(senders))
	var pe *envelope.ParseError
	switch {
	case errors.As(err, &pe):
		return 1
	case errors.As(err, new(*envelope.UnknownSenderError)):
		return 2
	case errors.As(err, new(*envelope.NoIdentityMatchError)), errors.Is(err, envelope.ErrUnwrap):
		return 3
	case errors.Is(err, envelope.ErrHeaderAuth):
		return 4
	case err != nil:
		return -1
	}
	_, err = io.Copy(io.Discard, r)
	switch {
	case errors.Is(err, envelope.ErrSignature):
		return 6
	case errors.Is(err, envelope.ErrPayloadAuth), errors.As(err, &pe):
		return 5
	case err != nil:
		return -1
	}
	return 7
}

// refStep is the step at which the independent decoder refuses env.
func refStep(env []byte, priv crypto.PrivateKey, senders []crypto.PublicKey) int {
	_, err := ref.OpenSigned(env, []crypto.PrivateKey{priv}, senders)
	for i, s := range []error{ref.ErrStepParse, ref.ErrStepSender, ref.ErrStepStanza, ref.ErrStepMAC, ref.ErrStepPayload, ref.ErrStepSignature} {
		if errors.Is(err, s) {
			return i + 1
		}
	}
	if err != nil {
		return -1
	}
	return 7
}
