package token_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/tokenseal/tokenseal/internal/p11test"
	"github.com/tokenseal/tokenseal/token"
)

func TestParseURI(t *testing.T) {
	for _, c := range []struct {
		in    string
		path  map[string]string
		query map[string]string
		err   bool
	}{
		{in: "pkcs11:", path: map[string]string{}, query: map[string]string{}},
		{in: "pkcs11:token=tokenseal", path: map[string]string{"token": "tokenseal"}, query: map[string]string{}},
		{
			in:    "pkcs11:token=my%20token;serial=0123abcd;object=alice;id=%01%02%ff;type=private;",
			path:  map[string]string{"token": "my token", "serial": "0123abcd", "object": "alice", "id": "\x01\x02\xff", "type": "private"},
			query: map[string]string{},
		},
		{
			in:    "PKCS11:object=a%3Bb?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin",
			path:  map[string]string{"object": "a;b"},
			query: map[string]string{"module-path": "/usr/lib/softhsm/libsofthsm2.so", "pin-source": "file:/run/pin"},
		},
		{in: "pkcs11:token=a?pin-source=%2Ftmp%2Fp;module-path=/m.so", path: map[string]string{"token": "a"}, query: map[string]string{"pin-source": "/tmp/p", "module-path": "/m.so"}},
		{in: "pkcs11:x-vendor=1;token=a", path: map[string]string{"token": "a"}, query: map[string]string{}},
		{in: "pkcs11:token=a=b", path: map[string]string{"token": "a=b"}, query: map[string]string{}},
		{in: "pkcs11:token=a%3fb?", path: map[string]string{"token": "a?b"}, query: map[string]string{}},
		{in: "token=a", err: true},
		{in: "pkcs1:token=a", err: true},
		{in: "pkcs11:token", err: true},
		{in: "pkcs11:=a", err: true},
		{in: "pkcs11:token=a;token=b", err: true},
		{in: "pkcs11:token=%zz", err: true},
		{in: "pkcs11:token=%4", err: true},
		{in: "pkcs11:color=red", err: true},
		{in: "pkcs11:type=bogus", err: true},
		{in: "pkcs11:token=a?pin-value=1234", err: true},
	} {
		u, err := token.ParseURI(c.in)
		if c.err {
			if err == nil || !errors.Is(err, token.ErrBadURI) {
				t.Errorf("%q: got %v, want ErrBadURI", c.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(u.Path, c.path) || !reflect.DeepEqual(u.Query, c.query) {
			t.Errorf("%q: got path %q query %q, want %q %q", c.in, u.Path, u.Query, c.path, c.query)
		}
	}
	u, _ := token.ParseURI("pkcs11:id=%de%ad;object=k;serial=42")
	if string(u.ID()) != "\xde\xad" || u.Object() != "k" || u.Serial() != "42" || u.TokenLabel() != "" {
		t.Errorf("accessors: %x %q %q", u.ID(), u.Object(), u.Serial())
	}
}

func TestURIPIN(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "pin")
	os.WriteFile(good, []byte("1234\n"), 0o600)
	crlf := filepath.Join(dir, "pin-crlf")
	os.WriteFile(crlf, []byte("1234\r\n"), 0o600)
	two := filepath.Join(dir, "pin-two")
	os.WriteFile(two, []byte("1234\n\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	for _, c := range []struct {
		src, want string
		err       bool
	}{
		{src: good, want: "1234"},
		{src: "file:" + good, want: "1234"},
		{src: "file://" + good, want: "1234"},
		{src: crlf, want: "1234"},
		{src: two, want: "1234\n"},
		{src: empty, err: true},
		{src: filepath.Join(dir, "missing"), err: true},
		{src: "env:PIN", err: true},
	} {
		u, err := token.ParseURI("pkcs11:token=a?pin-source=" + c.src)
		if err != nil {
			t.Fatal(err)
		}
		pin, ok, err := u.PIN()
		if !ok {
			t.Errorf("%s: no pin-source seen", c.src)
		}
		if c.err != (err != nil) || pin != c.want {
			t.Errorf("%s: got %q, %v", c.src, pin, err)
		}
		if err != nil && pin != "" {
			t.Errorf("%s: error with a pin", c.src)
		}
	}
	u, _ := token.ParseURI("pkcs11:token=a")
	if _, ok, err := u.PIN(); ok || err != nil {
		t.Errorf("no pin-source: ok=%v err=%v", ok, err)
	}
}

// TestOpenURI opens a token through a URI carrying module-path and
// pin-source, and finds a key by object=; by serial and by slot-id too.
func TestOpenURI(t *testing.T) {
	p11test.Each(t, func(t *testing.T, pt *p11test.Token) {
		tok := openToken(t, pt)
		generate(t, tok, "alice", "rsa-2048", token.UsageExchange)
		tok.Close()
		pinFile := filepath.Join(t.TempDir(), "pin")
		os.WriteFile(pinFile, []byte(pt.PIN+"\n"), 0o600)
		uri := "pkcs11:token=" + pt.Label + ";object=alice;type=private?module-path=" + pt.Module + "&pin-source=file:" + pinFile
		tok2, err := token.Open(token.Config{Token: uri})
		if err != nil {
			t.Fatal(err)
		}
		u, _ := token.ParseURI(uri)
		k, err := tok2.FindKeyURI(u)
		if err != nil || k.Label != "alice" {
			t.Fatalf("FindKeyURI: %v", err)
		}
		tok2.Close()
		bad := "pkcs11:token=" + pt.Label + "?module-path=" + pt.Module + "&pin-source=" + filepath.Join(t.TempDir(), "nope")
		if _, err := token.Open(token.Config{Token: bad}); !errors.Is(err, token.ErrNoPIN) {
			t.Errorf("unreadable pin-source: got %v", err)
		}
		for _, sel := range []string{"serial=" + pt.Serial, fmt.Sprintf("slot-id=%d", pt.Slot)} {
			tok3, err := token.Open(token.Config{Token: "pkcs11:" + sel + "?module-path=" + pt.Module, PIN: pt.PIN})
			if err != nil {
				t.Fatalf("by %s: %v", sel, err)
			}
			if tok3.Info().Label != pt.Label {
				t.Errorf("by %s: opened %v", sel, tok3.Info())
			}
			tok3.Close()
		}
	})
}
