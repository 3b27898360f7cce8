package format

import (
	"bytes"
	"encoding/base64"
	"io"
	"strings"
	"testing"
)

// TestArmorRefusesCRInsideLine: base64's Strict mode still skips CR and
// LF, so a body line with CRs in it decoded to fewer bytes and was taken
// as a full line: a second armored form of the same envelope, and CR
// accepted where FORMAT.md section 7 says a reader refuses it.
func TestArmorRefusesCRInsideLine(t *testing.T) {
	bin := bytes.Repeat([]byte{0xa5}, 45+48)
	enc := base64.StdEncoding.EncodeToString(bin)
	// 45 bytes as 60 characters and four CRs: a 64-character line.
	line1 := enc[:60] + "\r\r\r\r"
	armored := ArmorBegin + "\n" + line1 + "\n" + enc[60:] + "\n" + ArmorEnd + "\n"
	got, err := io.ReadAll(NewArmoredReader(strings.NewReader(armored)))
	if err == nil {
		t.Fatalf("armor with CR inside a body line accepted (decoded %d bytes, same as canonical: %v)", len(got), bytes.Equal(got, bin))
	}
}
