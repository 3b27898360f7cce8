package cms

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"testing"
)

// TestRoundTrip seals and opens every combination of key, recipient
// form, content algorithm, signer and armor, the size cycling through the
// boundaries (a full matrix of sizes too would cost minutes under -race).
func TestRoundTrip(t *testing.T) {
	ks, _ := keys(t)
	sizes := []int{0, 1, 15, 16, 17, contentChunk + 3}
	i := 0
	for _, name := range []string{"rsa2048", "rsa3072", "p256", "p384"} {
		k := ks[name]
		for _, byCert := range []bool{true, false} {
			r := recipientFor(t, k, byCert)
			for _, compat := range []bool{false, true} {
				for _, signed := range []string{"", "sign-p256", "sign-rsa2048"} {
					for _, armor := range []bool{false, true} {
						size := sizes[i%len(sizes)]
						i++
						name := fmt.Sprintf("%s/cert=%v/compat=%v/signed=%s/armor=%v/%d", name, byCert, compat, signed, armor, size)
						roundTrip(t, name, k, r, compat, signed, armor, size)
					}
				}
			}
		}
	}
}

func roundTrip(t *testing.T, name string, k *testKey, r *Recipient, compat bool, signer string, armor bool, size int) {
	pt := make([]byte, size)
	rand.Read(pt)
	opts := &SealOptions{Compat: compat, Armor: armor}
	oo := &OpenOptions{AllowUnauthenticated: compat, AllowUnsigned: signer == ""}
	if signer != "" {
		opts.Sender = sender(t, signer, signer == "sign-p256")
		oo.Senders = trusted{opts.Sender.Signer.Public()}
	}
	msg := sealBytes(t, pt, []*Recipient{r}, opts)
	got, res, err := openBytes(msg, k.identity(t), oo)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !bytes.Equal(got, pt) || res.Length != int64(size) {
		t.Fatalf("%s: plaintext differs", name)
	}
	if (res.Sender != nil) != (signer != "") {
		t.Fatalf("%s: sender %v", name, res.Sender)
	}
	if s := res.Sender; s != nil && (!s.HasStamp || s.Serial != 42 || s.StreamID != 7 || !s.SigningTime.Equal(opts.Sender.Time)) {
		t.Fatalf("%s: sender %+v", name, s)
	}
	// The same through VerifyTo and DecryptFrom.
	d, err := Open(bytes.NewReader(msg), k.identity(t), oo)
	if err != nil {
		t.Fatal(err)
	}
	var spool, out bytes.Buffer
	v, err := d.VerifyTo(&spool)
	if err != nil {
		t.Fatalf("%s: VerifyTo: %v", name, err)
	}
	if err := v.DecryptFrom(&spool, &out); err != nil || !bytes.Equal(out.Bytes(), pt) {
		t.Fatalf("%s: DecryptFrom: %v", name, err)
	}
}
