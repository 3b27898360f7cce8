package main

import (
	"crypto/rand"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	ref "github.com/tokenseal/tokenseal/internal/reference"
)

// inspect never prints what a header cannot mean: a timestamp of the year
// 10000 or later (every u64 of 2^63 ms or more read as an int64 is before
// 1970: inspect printed the year -292275055 before the fix) or serial 0
// is a malformed header (FORMAT.md 2.3, 2.5 step 1), refused with exit 4
// naming the value (issue 11 finding 8); the largest values that mean
// something are shown.
func TestInspectImpossibleStamps(t *testing.T) {
	r := newRig(t)
	signer, to := p256Key(t), p256Key(t)
	for _, c := range []struct {
		serial, ts uint64
		want       string // on stdout, or on stderr when refused
		refused    bool
	}{
		{0, 1700000000000, `malformed envelope: sender extension names serial 0 \(serials start at 1\)`, true},
		{7, 1 << 63, `malformed envelope: sender extension has an impossible timestamp \(9223372036854775808 ms: the year 10000 or later\)`, true},
		{7, 253402300800000, `impossible timestamp \(253402300800000 ms`, true},
		{1<<64 - 1, 1<<64 - 1, `impossible timestamp \(18446744073709551615 ms`, true},
		{1<<64 - 1, 253402300799999, `serial 18446744073709551615, timestamp 9999-12-31T23:59:59.999Z`, false},
	} {
		e := ref.NewCraft(rand.Reader)
		e.Stanzas = [][]byte{ref.StanzaFor(rand.Reader, to.Public(), e.FK)}
		e.Exts = [][]byte{ref.SenderExt(signer, 9, c.serial, c.ts)}
		env := r.write("stamp.tseal", append(e.Seal([]byte("x")), make([]byte, 64)...))
		res := r.run("inspect", env)
		out := res.stdout + res.stderr
		if strings.Contains(out, "-292275055") || !regexp.MustCompile(c.want).MatchString(out) || (res.code == exitEnvelope) != c.refused {
			t.Errorf("serial %d timestamp %d: exit %d\n%s", c.serial, c.ts, res.code, out)
		}
		if c.refused {
			continue
		}
		var js inspectJSON
		if err := json.Unmarshal([]byte(r.expect(0, r.recv, "inspect", "--json", env).stdout), &js); err != nil {
			t.Fatal(err)
		}
		if s := js.Sender; s.TimestampMS != c.ts || s.Serial != c.serial || s.Timestamp != "9999-12-31T23:59:59.999Z" {
			t.Errorf("serial %d timestamp %d: JSON %+v", c.serial, c.ts, s)
		}
	}
}
