package format

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func sampleHeader() *Header {
	h := &Header{Version: Version, ChunkLog2: ChunkLog2}
	for i := range h.Salt {
		h.Salt[i] = byte(i)
	}
	h.Stanzas = []*Stanza{
		{Type: StanzaRSAOAEP, KeyID: [32]byte{1}, Body: append([]byte{1}, bytes.Repeat([]byte{0xaa}, 256)...)},
		{Type: StanzaECDHP256, KeyID: [32]byte{2}, Body: bytes.Repeat([]byte{0xbb}, 105)},
	}
	h.MAC[0] = 0xcc
	return h
}

func TestRoundTrip(t *testing.T) {
	h := sampleHeader()
	h.Sender = &Sender{KeyID: [32]byte{9}, SigAlg: SigECDSAP256SHA256, SigLen: 64, StreamID: 7, Serial: 42, Timestamp: 1700000000000}
	h.Unknown = []Extension{{Type: ExtPreviousSender, Value: MarshalPreviousSender(&Sender{KeyID: [32]byte{8}, StreamID: 3, Serial: 1, Timestamp: 1600000000000})}}
	raw, err := h.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, raw2, err := ReadHeader(bytes.NewReader(append(bytes.Clone(raw), "payload"...)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, raw2) {
		t.Fatal("raw header differs")
	}
	again, _ := got.Marshal()
	if !bytes.Equal(raw, again) {
		t.Fatal("re-encoding differs")
	}
	if *got.Sender != *h.Sender || got.TrailerLen() != 64 {
		t.Fatalf("sender = %+v", got.Sender)
	}
}

// Versions 1 and 2 both parse and re-encode as they were; Marshal
// refuses any other.
func TestVersions(t *testing.T) {
	for _, v := range []uint8{Version1, Version2} {
		h := sampleHeader()
		h.Version = v
		raw, err := h.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseHeader(raw)
		if err != nil || got.Version != v || raw[len(Magic)] != v {
			t.Fatalf("version %d: %v, parsed as %d", v, err, got.Version)
		}
	}
	for _, v := range []uint8{0, 3} {
		h := sampleHeader()
		h.Version = v
		if _, err := h.Marshal(); err == nil {
			t.Errorf("version %d marshalled", v)
		}
	}
}

func TestRefusals(t *testing.T) {
	mk := func(f func(h *Header)) []byte {
		h := sampleHeader()
		f(h)
		raw, err := h.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	good := mk(func(*Header) {})
	cases := map[string][]byte{
		"bad magic":          append([]byte("tokenseaL"), good[9:]...),
		"version 3":          append(append([]byte(Magic), 3), good[10:]...),
		"version 0":          append(append([]byte(Magic), 0), good[10:]...),
		"chunk size":         mk(func(h *Header) { h.ChunkLog2 = 17 }),
		"no stanzas":         mk(func(h *Header) { h.Stanzas = nil }),
		"critical unknown":   mk(func(h *Header) { h.Unknown = []Extension{{Type: 0x8fff}} }),
		"trailing":           append(bytes.Clone(good), 0),
		"sender bad sig alg": mk(func(h *Header) { h.Sender = &Sender{SigAlg: 9, SigLen: 64} }),
		"sender bad sig len": mk(func(h *Header) { h.Sender = &Sender{SigAlg: SigECDSAP256SHA256, SigLen: 65} }),
		// FORMAT.md 2.4: a previous sender only under a sender, and well formed.
		"previous sender, unsigned": mk(func(h *Header) { h.Unknown = []Extension{{Type: ExtPreviousSender, Value: prev(1, 1)}} }),
		"previous sender of 55 bytes": mk(func(h *Header) {
			h.Sender, h.Unknown = signed(), []Extension{{Type: ExtPreviousSender, Value: prev(1, 1)[:55]}}
		}),
		"previous sender, serial 0": mk(func(h *Header) {
			h.Sender, h.Unknown = signed(), []Extension{{Type: ExtPreviousSender, Value: prev(0, 1)}}
		}),
		"previous sender, year 10000": mk(func(h *Header) {
			h.Sender, h.Unknown = signed(), []Extension{{Type: ExtPreviousSender, Value: prev(1, MaxTimestamp)}}
		}),
	}
	for name, raw := range cases {
		if _, err := ParseHeader(raw); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ParseHeader(mk(func(h *Header) { h.Unknown = []Extension{{Type: 0x0fff, Value: []byte("ok")}} })); err != nil {
		t.Errorf("non-critical unknown extension refused: %v", err)
	}
	if _, err := ParseHeader(mk(func(h *Header) {
		h.Sender, h.Unknown = signed(), []Extension{{Type: ExtPreviousSender, Value: prev(1<<64-1, MaxTimestamp-1)}}
	})); err != nil {
		t.Errorf("previous sender refused: %v", err)
	}
	// The sentinel is in the chain, not only in the text, and the
	// error is still a *ParseError; ReadHeader says the same.
	for _, read := range []func([]byte) error{
		func(b []byte) error { _, err := ParseHeader(b); return err },
		func(b []byte) error { _, _, err := ReadHeader(bytes.NewReader(b)); return err },
	} {
		err := read(cases["version 3"])
		var pe *ParseError
		if !errors.Is(err, ErrUnknownVersion) || !errors.As(err, &pe) || !strings.Contains(err.Error(), "unknown envelope version 3") {
			t.Errorf("version error = %v", err)
		}
		if err := read(cases["bad magic"]); errors.Is(err, ErrUnknownVersion) {
			t.Errorf("bad magic error %v matches ErrUnknownVersion", err)
		}
	}
	// Out-of-order extensions, hand-made.
	h := sampleHeader()
	h.Unknown = []Extension{{Type: 3}, {Type: 1}}
	raw, _ := h.Marshal() // Marshal sorts them
	if _, err := ParseHeader(raw); err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(raw, []byte{0, 1, 0, 0, 0, 3, 0, 0})
	if i < 0 {
		t.Fatal("extensions not found")
	}
	copy(raw[i:], []byte{0, 3, 0, 0, 0, 1, 0, 0})
	if _, err := ParseHeader(raw); err == nil {
		t.Error("out-of-order extensions accepted")
	}
}

// signed is a sender extension; prev a previous-sender value.
func signed() *Sender {
	return &Sender{KeyID: [32]byte{9}, SigAlg: SigECDSAP256SHA256, SigLen: 64, StreamID: 7, Serial: 42, Timestamp: 1700000000000}
}

func prev(serial, ts uint64) []byte {
	return MarshalPreviousSender(&Sender{KeyID: [32]byte{8}, StreamID: 3, Serial: serial, Timestamp: ts})
}

func TestLengthCap(t *testing.T) {
	// A header claiming 16 MiB of body is refused before reading it.
	raw := append([]byte(Magic), Version, 0xff, 0xff, 0xff)
	if _, _, err := ReadHeader(bytes.NewReader(raw)); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("err = %v", err)
	}
}

func armor(t testing.TB, b []byte) string {
	var buf bytes.Buffer
	w := NewArmoredWriter(&buf)
	w.Write(b[:len(b)/3])
	w.Write(b[len(b)/3:])
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestArmor(t *testing.T) {
	for _, n := range []int{1, 2, 3, 47, 48, 49, 96, 1000} {
		b := bytes.Repeat([]byte{byte(n)}, n)
		a := armor(t, b)
		got, err := io.ReadAll(NewArmoredReader(strings.NewReader(a)))
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("n=%d: %v", n, err)
		}
	}
	a := armor(t, bytes.Repeat([]byte{7}, 100))
	bad := map[string]string{
		"crlf":          strings.ReplaceAll(a, "\n", "\r\n"),
		"trailing":      a + "x",
		"trailing nl":   a + "\n",
		"no final nl":   strings.TrimSuffix(a, "\n"),
		"short line":    strings.Replace(a, "\n", "\n\n", 2),
		"space":         strings.Replace(a, "A", " ", 1),
		"bad padding":   strings.Replace(a, "Bw==", "Bx==", 1),
		"no begin":      a[len(ArmorBegin)+1:],
		"lowercase end": strings.Replace(a, "END", "end", 1),
		"empty":         "",
	}
	for name, s := range bad {
		if _, err := io.ReadAll(NewArmoredReader(strings.NewReader(s))); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzHeader checks that the parser accepts exactly one encoding: whatever
// it accepts re-encodes to the same bytes.
func FuzzHeader(f *testing.F) {
	raw, _ := sampleHeader().Marshal()
	f.Add(raw)
	h := sampleHeader()
	h.Sender = &Sender{SigAlg: SigRSAPSSSHA256, SigLen: 384}
	raw, _ = h.Marshal()
	f.Add(raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			return
		}
		again, err := h.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("accepted a non-canonical header:\n%x\n%x", b, again)
		}
	})
}

// FuzzArmor checks the armor reader accepts only canonical encodings.
func FuzzArmor(f *testing.F) {
	f.Add([]byte(armor(f, []byte("hello world"))))
	f.Add([]byte(armor(f, bytes.Repeat([]byte{1}, 200))))
	f.Fuzz(func(t *testing.T, b []byte) {
		dec, err := io.ReadAll(NewArmoredReader(bytes.NewReader(b)))
		if err != nil || len(dec) == 0 {
			return
		}
		if armor(t, dec) != string(b) {
			t.Fatalf("accepted a non-canonical armor: %q", b)
		}
	})
}
