package p11test

import (
	"strings"
	"testing"
	"time"
)

// TestMake makes each kind of token and checks what pkcs11-tool sees.
func TestMake(t *testing.T) {
	for _, k := range Kinds {
		t.Run(string(k), func(t *testing.T) {
			start := time.Now()
			tok := New(t, k)
			t.Logf("%s: label %s serial %s slot %d in %v", k, tok.Label, tok.Serial, tok.Slot, time.Since(start))
			slots, err := listSlots(tok.ModuleEnv(), tok.Module)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, s := range slots {
				found = found || s.id == tok.Slot && s.label == tok.Label
			}
			if !found {
				t.Fatalf("token %q not in slot %d: %+v", tok.Label, tok.Slot, slots)
			}
			if !tok.Caps().ManyTokens {
				if _, err := tok.AddToken("x"); err == nil || !strings.Contains(err.Error(), "one token") {
					t.Fatalf("AddToken on %s: %v", k, err)
				}
				return
			}
			label := tok.Label
			if !tok.Caps().SameLabels {
				label += "-2"
			}
			two, err := tok.AddToken(label)
			if err != nil {
				t.Fatal(err)
			}
			if two.Slot == tok.Slot || two.Label != label || tok.Caps().SameSerials != (two.Serial == tok.Serial) {
				t.Fatalf("second token: %+v, first %+v", two, tok)
			}
		})
	}
}
