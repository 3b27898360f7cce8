package main

import (
	"crypto/rand"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	ref "github.com/tokenseal/tokenseal/internal/reference"
)

// inspect shows what a header says, even where it says the impossible:
// a timestamp of the year 10000 or later (every u64 of 2^63 ms or more
// read as an int64 is before 1970: the year -292275055 before the fix)
// is shown as impossible, serial 0 as invalid (issue 11 finding 8).
func TestInspectImpossibleStamps(t *testing.T) {
	r := newRig(t)
	signer, to := p256Key(t), p256Key(t)
	for _, c := range []struct {
		serial, ts uint64
		want       string
	}{
		{0, 1 << 63, `serial 0 \(invalid: serials start at 1\), timestamp impossible \(9223372036854775808 ms since 1970`},
		{7, 253402300800000, `serial 7, timestamp impossible \(253402300800000 ms since 1970`},
		{7, 253402300799999, `serial 7, timestamp 9999-12-31T23:59:59.999Z`},
		{1<<64 - 1, 1<<64 - 1, `serial 18446744073709551615, timestamp impossible \(18446744073709551615 ms since 1970`},
	} {
		e := ref.NewCraft(rand.Reader)
		e.Stanzas = [][]byte{ref.StanzaFor(rand.Reader, to.Public(), e.FK)}
		e.Exts = [][]byte{ref.SenderExt(signer, 9, c.serial, c.ts)}
		env := r.write("stamp.tseal", append(e.Seal([]byte("x")), make([]byte, 64)...))
		out := r.expect(0, r.recv, "inspect", env).stdout
		if strings.Contains(out, "-292275055") || !regexp.MustCompile(c.want).MatchString(out) {
			t.Errorf("serial %d timestamp %d:\n%s", c.serial, c.ts, out)
		}
		var js inspectJSON
		if err := json.Unmarshal([]byte(r.expect(0, r.recv, "inspect", "--json", env).stdout), &js); err != nil {
			t.Fatal(err)
		}
		if s := js.Sender; s.TimestampMS != c.ts || s.Serial != c.serial || (s.Timestamp == nil) != (c.ts >= 253402300800000) {
			t.Errorf("serial %d timestamp %d: JSON %+v", c.serial, c.ts, s)
		}
	}
}
